"""The world, simulated time and the closed loop; the public entry points for scripts, the CLI and the app."""

from simulator.config import ConfigError, Scenario, load
from simulator.loop.records import Progress
from simulator.loop.results import RunOutput
from simulator.loop.simulation import Simulation


def run(scenario: Scenario, progress=None, stop=None) -> RunOutput:
    """Run one scenario to its end (or until `stop()` is true: the output says where) and return its output."""
    return Simulation(scenario, progress=progress, stop=stop).run()


__all__ = ["ConfigError", "Progress", "RunOutput", "Scenario", "Simulation", "load", "run"]
