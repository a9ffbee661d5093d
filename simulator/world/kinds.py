"""The registry of world kinds (`world.kind`), and the one way the loop and the tools build a world."""

from __future__ import annotations

from simulator.config import Scenario
from simulator.world.ground_truth import World
from simulator.world.realistic import RealisticWorld

WORLD_KINDS: dict[str, type[World]] = {"teaching": World, "realistic": RealisticWorld}


def make_world(scenario: Scenario, seed: int | None = None) -> World:
    """The scenario's world, reset with `seed` (the run's seed when None)."""
    world = WORLD_KINDS[scenario.world.kind](scenario)
    world.reset(scenario.run.seed if seed is None else seed)
    return world
