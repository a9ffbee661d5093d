"""The model's config sections ([model], [train], [data]): typed fields with their bounds, choices and meaning.

Every choice list is read from the registry that implements it (activations, transfers, normalisations,
architectures, optimizers, curricula, bias slices). `simulator.config` composes these sections with the
world's and the auction's, validates every field from its metadata, and calls each section's `check`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.activations import ACTIVATIONS
from models.ctr import ARCHITECTURES
from models.layers import NORMALIZATIONS
from models.losses import BIAS_SLICES, CURRICULA
from models.optim import COWCLIP_GRADIENTS, OPTIMIZERS
from models.transfers import TRANSFERS


class ConfigError(ValueError):
    """A bad scenario: the message is one line naming the field and what is allowed (raised at load, or where a
    world is built from it and its parts turn out to contradict each other)."""


def config_field(default, *, lo=None, hi=None, choices=None, item_choices=None, may_be_empty=False, doc=""):
    """A config field: its default, inclusive bounds or allowed choices (for a list: of its items), and its meaning.

    A list field with a non-empty default must stay non-empty unless `may_be_empty`; list items with
    `item_choices` must be distinct. `simulator.config` validates every section's fields from this metadata."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "item_choices": item_choices, "may_be_empty": may_be_empty,
            "doc": doc}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ModelConfig:
    oracle: bool = config_field(False, doc="score with the world's true CTR instead of a learned model")
    transfer: str = config_field("sigmoid", choices=tuple(TRANSFERS), doc="τ in pCTR = τ(Q·U)")
    activation: str = config_field("relu", choices=tuple(ACTIVATIONS),
                                   doc="hidden-layer activation of both towers")
    smelu_beta: float = config_field(1.0, lo=1e-6, hi=100.0, doc="SmeLU half-width β of the quadratic region")
    gsmelu_alpha: float = config_field(1.0, lo=1e-6, hi=100.0, doc="gSmeLU: left end −α of the quadratic region")
    gsmelu_beta: float = config_field(1.0, lo=1e-6, hi=100.0, doc="gSmeLU: right end β of the quadratic region")
    gsmelu_g_minus: float = config_field(0.0, lo=-10.0, hi=10.0, doc="gSmeLU: slope g₋ left of −α")
    gsmelu_g_plus: float = config_field(1.0, lo=-10.0, hi=10.0, doc="gSmeLU: slope g₊ right of β (must exceed g₋)")
    gsmelu_t: float = config_field(0.0, lo=-100.0, hi=0.0, doc="gSmeLU: value t at −α (≤ 0 to cross the origin)")
    normalization: str = config_field("none", choices=tuple(NORMALIZATIONS),
                                      doc="hidden layers of both towers: layer norm of each pre-activation, or weight norm "
                                          "(every neuron's incoming weights kept at L2 norm model.weight_norm)")
    weight_norm: float = config_field(1.0, lo=1e-3, hi=1000.0, doc="weight norm: the L2 norm v of every hidden neuron's "
                                                                  "incoming weights")
    activation_clip: float = config_field(0.0, lo=0.0, hi=1000.0, doc="clip hidden activations to [−c, c] (0 = no clipping)")
    embedding_dim: int = config_field(8, lo=1, hi=512, doc="width of every embedding")
    quality_hidden: list = config_field([64, 32], may_be_empty=True, doc="Q tower MLP widths ([] = Q is a linear map of the "
                                                                         "embeddings)")
    ui_hidden: list = config_field([16], may_be_empty=True, doc="U tower MLP widths ([] = a linear map of the UI features)")
    interaction_dim: int = config_field(8, lo=1, hi=512, doc="length of the Q and U vectors")
    ad_buckets: int = config_field(8192, lo=16, hi=10_000_000, doc="hash buckets for ad ids")
    cross_buckets: int = config_field(16384, lo=16, hi=10_000_000, doc="hash buckets of each cross (the teaching world has "
                                                                       "one: query topic × ad)")
    id_buckets: int = config_field(65536, lo=16, hi=100_000_000, doc="hash buckets for the realistic world's query and "
                                                                     "campaign ids")
    init_seed: int = config_field(0, lo=0, doc="nuisance seed of the initialisation")
    architecture: str = config_field("factorized", choices=tuple(ARCHITECTURES),
                                     doc="factorized: τ(Q·U), U cached per (treatment, position); unfactorized: one tower "
                                         "with treatment/position as input features, run per (candidate, treatment, position)")
    omit_crosses: list = config_field([], doc="hashed crosses left out of the model, each \"a*b\" as the world's "
                                             "feature spec names it (the realistic world: ad_id*query_topic, "
                                             "ad_id*query_id, ad_id*device, ad_topic*hour): feature ablations")
    dcn_layers: int = config_field(0, lo=0, hi=8, doc="DCNv2 low-rank cross layers on the Q tower's embedding input (0 = none)")
    dcn_rank: int = config_field(8, lo=1, hi=512, doc="rank k of each cross layer's U·V")
    bottleneck_dim: int = config_field(0, lo=0, hi=8192, doc="low-rank bottleneck k: every Q-tower layer m→n with k < min(m, n) "
                                                             "becomes m→k→n (0 = none)")
    embedding_init_std: float = config_field(0.0, lo=0.0, hi=10.0, doc="std of the normal initialisation of every embedding "
                                                                        "(0 = Flax's default, 1/√embedding_dim)")
    ensemble_size: int = config_field(1, lo=1, hi=16, doc="self-ensemble components, each initialised differently; "
                                                          "pCTR = their mean")
    position_feature: bool = config_field(True, doc="the U tower (or the unfactorized tower) sees the position; false = a "
                                                    "misspecified model that cannot tell a low slot from a weak ad")

    def check(self) -> None:
        """Cross-field checks (ValueError "field: why")."""
        if self.gsmelu_g_plus <= self.gsmelu_g_minus:
            raise ValueError(f"gsmelu_g_plus: must exceed gsmelu_g_minus ({self.gsmelu_g_minus:g}), got {self.gsmelu_g_plus:g}")
        for key in ("quality_hidden", "ui_hidden"):
            widths = getattr(self, key)
            if not all(isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 8192 for x in widths):
                raise ValueError(f"{key}: each width must be an integer in 1..8192, got {widths!r}")


@dataclass(frozen=True)
class TrainConfig:
    learning_rate: float = config_field(0.05, lo=1e-8, hi=100.0, doc="learning rate (of the dense layers when "
                                                                       "embedding_learning_rate is set)")
    adagrad_initial_accumulator: float = config_field(0.1, lo=0.0, hi=100.0, doc="AdaGrad's initial accumulator "
                                                                                  "(also Shampoo's grafting AdaGrad)")
    batch_size: int = config_field(512, lo=1, hi=1_000_000, doc="examples per gradient step (single pass)")
    optimizer: str = config_field("adagrad", choices=tuple(OPTIMIZERS),
                                  doc="dense layers' optimizer; embeddings stay on AdaGrad except with adam")
    embedding_learning_rate: float = config_field(0.0, lo=0.0, hi=100.0, doc="embeddings' learning rate (0 = learning_rate)")
    embedding_l2: float = config_field(0.0, lo=0.0, hi=100.0, doc="L2 weight on the embeddings")
    scaling_base_batch_size: int = config_field(0, lo=0, hi=1_000_000,
                                                doc="CowClip scaling rule: for batch = s × this, dense lr × √s, embedding "
                                                    "lr kept (AdaGrad's initial accumulator ÷ s²), embedding L2 × s (0 = no "
                                                    "scaling)")
    shampoo_block_size: int = config_field(128, lo=1, hi=4096, doc="Shampoo: preconditioner block size")
    shampoo_update_every: int = config_field(10, lo=1, hi=100_000, doc="Shampoo: steps between inverse-root refreshes")
    shampoo_momentum: float = config_field(0.9, lo=0.0, hi=0.999, doc="Shampoo: Nesterov momentum (0 = none)")
    shampoo_start_preconditioning: int = config_field(10, lo=0, hi=1_000_000_000,
                                                      doc="Shampoo: steps on AdaGrad's direction before preconditioning (a "
                                                          "huge value = AdaGrad with Shampoo's momentum: its like-for-like "
                                                          "control)")
    sparse_embeddings: bool = config_field(False, doc="update only the Q-embedding rows each batch uses, so a step costs the "
                                                      "same with any table size (AdaGrad and CowClip: the same steps; Adam "
                                                      "and embedding_l2 become lazy: rows a batch skips keep their state)")
    cowclip: bool = config_field(False, doc="CowClip: clip each Q-embedding row's gradient to cnt·max(r‖w‖, ζ)")
    cowclip_r: float = config_field(1.0, lo=0.0, hi=1000.0, doc="CowClip ratio r")
    cowclip_zeta: float = config_field(1e-4, lo=0.0, hi=100.0, doc="CowClip lower bound ζ")
    cowclip_gradient: str = config_field("batch_mean", choices=tuple(COWCLIP_GRADIENTS),
                                         doc="the gradient CowClip bounds: the batch-mean loss's (Algorithm 1, the paper's "
                                             "code) or the summed per-example gradients (§3.1–3.2: each occurrence's "
                                             "at most max(r‖w‖, ζ); = batch_mean with r, ζ ÷ the batch's weight)")
    rank_loss_weight: float = config_field(0.0, lo=0.0, hi=0.99, doc="α₁: loss = α₁·RankNet (pairs of ads of the same query) "
                                                                      "+ (1 − α₁)·log loss")
    distillation_weight: float = config_field(0.0, lo=0.0, hi=1.0, doc="two-pass distillation: a teacher trains first on each "
                                                                        "batch; target = (1 − w)·click + w·teacher PV (0 = off)")
    teacher_width_multiplier: int = config_field(2, lo=1, hi=16, doc="the teacher's Q-tower widths × this")
    loss_curriculum: str = config_field("none", choices=tuple(CURRICULA),
                                        doc="ramp of the rank, distillation and bias terms from 0 to full weight")
    loss_curriculum_examples: int = config_field(200_000, lo=1, hi=10**10, doc="examples the curriculum ramp takes")
    bias_constraints: list = config_field([], item_choices=tuple(BIAS_SLICES),
                                                 doc="slice families with one dual variable per slice (empty = off)")
    bias_alpha: float = config_field(0.01, lo=1e-6, hi=1e6, doc="α₃: L2 on the duals (λ settles at slice bias / α₃)")
    bias_learning_rate: float = config_field(1.0, lo=0.0, hi=1e6, doc="gradient-ascent step of the dual variables")
    anti_distillation_weight: float = config_field(0.0, lo=0.0, hi=100.0, doc="ensembles: weight of the loss pushing the "
                                                                                "components apart")
    focal_loss_weight: float = config_field(0.0, lo=0.0, hi=100.0, doc="weight of a focal-loss term added to the loss "
                                                                       "(Lin et al. 2017; 0 = off)")
    focal_gamma: float = config_field(2.0, lo=0.0, hi=10.0, doc="the focal loss's γ: (1 − p_t)^γ down-weights well-predicted "
                                                                "examples (0 = log loss)")
    num_devices: int = config_field(1, lo=1, hi=1024, doc="data-parallel training over this many jax devices "
                                                          "(batch_size must be a multiple)")
    shuffle_seed: int = config_field(0, lo=0, hi=255, doc="nuisance seed of the training order: > 0 trains the logs that reach the trainer together (a tick's) in a query order drawn from it, roughly chronological like a distributed pipeline (0 = arrival order)")
    training_delay_minutes: float = config_field(5.0, lo=0.0, hi=10_000.0, doc="logs reach the trainer this late")
    deploy_every_minutes: float = config_field(15.0, lo=0.01, hi=100_000.0, doc="a snapshot of the trained model is taken this often (simulated minutes)")
    deploy_delay_minutes: float = config_field(2.0, lo=0.0, hi=10_000.0, doc="a snapshot goes live this late")
    divergence_factor: float = config_field(3.0, lo=0.0, hi=1e6, doc="stop when PV log loss over the last ~2,000 examples "
                                                                       "exceeds this × the oracle's (0 = never); NaN/inf always stop")
    divergence_warmup_examples: int = config_field(20_000, lo=0, hi=10**9, doc="examples trained before the factor is checked "
                                                                                         "(at least 20 batches)")

    def teacher(self) -> TrainConfig:
        """A distillation teacher's config: plain AdaGrad at this learning rate, batch size, device count and embedding
        updates."""
        return TrainConfig(learning_rate=self.learning_rate, adagrad_initial_accumulator=self.adagrad_initial_accumulator,
                           batch_size=self.batch_size, num_devices=self.num_devices,
                           sparse_embeddings=self.sparse_embeddings)

    def check(self) -> None:
        """Cross-field checks (ValueError "field: why")."""
        if self.batch_size % self.num_devices:
            raise ValueError(f"num_devices: batch_size {self.batch_size} must be a multiple of it, got {self.num_devices}")


@dataclass(frozen=True)
class DataConfig:
    negative_keep_rate: float = config_field(1.0, lo=1e-4, hi=1.0, doc="share of non-clicked examples kept for training "
                                                                         "(kept ones weigh 1/rate)")
    low_position_keep_rate: float = config_field(1.0, lo=1e-4, hi=1.0, doc="share kept of examples at position ≥ "
                                                                             "low_position_from")
    low_position_from: int = config_field(2, lo=0, hi=4, doc="first position (0 = top) counted as low")
    low_pctr_keep_rate: float = config_field(1.0, lo=1e-4, hi=1.0, doc="share kept of non-clicked examples whose served "
                                                                         "pCTR < low_pctr_threshold (low log loss)")
    low_pctr_threshold: float = config_field(0.01, lo=0.0, hi=1.0, doc="see low_pctr_keep_rate")
