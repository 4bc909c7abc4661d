r"""APT: the budget search keeps at most the budget and is within one block of it.

Statement
---------
With blocks sorted by density $s_i / p_i$ (largest first, order $\pi$) and
$k^\star = \max\{k : \sum_{r \le k} p_{\pi(r)} \le B\}$ found by binary search, the kept
parameters $P^\star = \sum_{r \le k^\star} p_{\pi(r)}$ satisfy
$$P^\star \le B \quad\text{and}\quad B - P^\star < p_{\pi(k^\star + 1)} \le \max_i p_i$$
unless every block is kept; $k^\star$ is the length a linear scan of the prefixes finds.
With hidden dimensions pruned too, the count is coupled (a head of a model keeping $d'$ of
$d$ hidden dimensions owns $d_h(4d' + 3)$ parameters) and $P^\star$ is the exact count
$C$ of the kept set; the same two inequalities hold with each block's full-size $p_i$.

Source
------
Zhao, Hajishirzi & Cao (ICML 2024), APT, Sec. 4.2 (blocks of all kinds ranked together by
salience density; binary search over the kept prefix under the parameter constraint).

Method
------
Numerical: `kernelapprox.compression.pruning.select_blocks` on seeded random problems (1 to
60 blocks, parameter counts 1 to 100, saliences of either sign, budgets from 0 to above the
total) against a linear scan over every prefix of the same order; then on the sites of a
`kernelapprox.lm.Decoder` (heads of $4 d d_h + 3 d_h$, neurons of $2d + 1$ parameters) at
the kept fractions of APT's cubic schedule; then, where transformers is installed, on a
small BERT encoder with its hidden dimensions as blocks
(`kernelapprox.compression.pruning.selection.select_masks` with `HiddenDims`), against a
linear scan of the exact count $C$ of every prefix, and with $C$ of the kept set equal to
the parameters of the encoder layers once shrunk. Every case must satisfy both inequalities
and match the scan exactly.
"""

from __future__ import annotations

from ._core import Verdict, package_module
from ._numerical import numerical_claim

SEED = 20240718


def _scan(order, params, budget) -> int:
    total, k = 0, 0
    for i in order:
        total += params[i]
        if total > budget:
            break
        k += 1
    return k


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    import numpy as np
    import torch

    pruning = package_module("kernelapprox.compression.pruning")
    rng = np.random.default_rng(seed)
    failures, cases, tightest = [], 0, 0.0
    problems = []
    for _ in range(400 if thorough else 120):
        n = int(rng.integers(1, 61))
        salience = rng.normal(size=n) * 10.0 ** rng.integers(-3, 4)
        params = rng.integers(1, 101, size=n)
        problems.append((salience, params, float(rng.uniform(0, 1.1) * params.sum())))
    from kernelapprox.lm import Decoder, DecoderConfig

    config = DecoderConfig(context=4, n_layers=3, d_model=16, n_heads=4, d_mlp=24)
    sites = pruning.decoder_sites(Decoder(config, seed=seed))
    sal = np.concatenate([rng.random(s.n_groups) for s in sites])
    par = np.concatenate([np.full(s.n_groups, s.params_per_group) for s in sites])
    for step in pruning.pruning_steps(0, 100):
        gamma = pruning.cubic_keep_fraction(step, t_warm=0, t_end=100, gamma_final=0.4)
        problems.append((sal, par, gamma * float(par.sum())))
    for salience, params, budget in problems:
        sel = pruning.select_blocks(torch.from_numpy(salience), torch.from_numpy(params), budget)
        order = sel.order.tolist()
        kept = sel.kept_params
        ok = kept <= budget and sel.n_kept == _scan(order, params, budget)
        ok = ok and kept == int(params[sel.keep.numpy()].sum())
        if sel.n_kept < len(params):
            nxt = int(params[order[sel.n_kept]])
            ok = ok and budget - kept < nxt <= int(params.max())
            tightest = max(tightest, (budget - kept) / nxt)
        if not ok:
            failures.append({"n": len(params), "budget": budget, "kept": kept})
        cases += 1
    coupled = _coupled_cases(rng, pruning, 30 if thorough else 11)
    for case in coupled:
        if not case.pop("ok"):
            failures.append(case)
        else:
            tightest = max(tightest, case["gap"])
        cases += 1
    hidden = (
        f", {len(coupled)} on a BERT encoder with hidden dimensions (exact coupled count, "
        "equal to the shrunk encoder's)"
        if coupled
        else " (transformers not installed: no coupled cases)"
    )
    summary = (
        f"{cases} problems ({len(problems) - 11} random, 11 schedule steps on a decoder's "
        f"heads and neurons{hidden}): kept ≤ budget, budget - kept < next block, equal to "
        f"the linear scan in all but {len(failures)}; largest (budget - kept) / next block "
        f"{tightest:.3f}"
    )
    return Verdict.decide(
        not failures, summary, cases=cases, failures=failures[:5], tightest_gap=tightest
    )


def _coupled_cases(rng, pruning, n: int) -> list[dict]:
    """Budget searches with hidden dimensions on a small BERT encoder: each a dict with
    ``ok`` and ``gap`` = (budget - kept) / the next block's full-size parameters."""
    try:
        import transformers
    except ImportError:
        return []
    import numpy as np
    import torch

    hidden_mod = package_module("kernelapprox.compression.pruning.hidden")
    selection = package_module("kernelapprox.compression.pruning.selection")
    config = transformers.BertConfig(
        vocab_size=40,
        hidden_size=24,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=40,
        max_position_embeddings=8,
    )
    out = []
    for k in range(n):
        torch.manual_seed(k)
        model = transformers.BertModel(config, add_pooling_layer=False)
        sites = pruning.bert_sites(model)
        hidden = hidden_mod.HiddenDims(model)
        scores = {
            s.name: torch.from_numpy(rng.random(s.n_groups) ** 3) for s in [*sites, *hidden.sites]
        }
        total = hidden.count(sites, {}, hidden.width)
        fraction = pruning.cubic_keep_fraction(k, t_warm=0, t_end=n - 1, gamma_final=0.4)
        budget = fraction * total * float(rng.uniform(0.5, 1.0))
        masks, sel = selection.select_masks(sites, scores, budget, hidden=hidden)
        params = [s.params_per_group for s in sites for _ in range(s.n_groups)]
        params += [hidden.params_per_dim(sites)] * hidden.width
        bounds = np.cumsum([0, *(s.n_groups for s in sites)])

        size = len(params)

        def cost(prefix, sites=sites, hidden=hidden, bounds=bounds, size=size):
            keep = np.zeros(size, dtype=bool)
            keep[prefix] = True
            pairs = zip(sites, bounds[:-1], bounds[1:], strict=True)
            kept = {s.name: int(keep[a:b].sum()) for s, a, b in pairs}
            return hidden.count(sites, kept, int(keep[bounds[-1] :].sum()))

        order = sel.order.tolist()
        scan = max(j for j in range(len(order) + 1) if cost(order[:j]) <= budget)
        pruning.shrink_bert(model, masks)
        shrunk = sum(pruning.count_params(layer) for layer in pruning.bert_layers(model))
        ok = sel.kept_params == cost(order[: sel.n_kept]) == shrunk and sel.n_kept == scan
        ok = ok and sel.kept_params <= budget
        gap = 0.0
        if sel.n_kept < len(order):
            nxt = params[order[sel.n_kept]]
            ok = ok and budget - sel.kept_params < nxt <= max(params)
            gap = (budget - sel.kept_params) / nxt
        out.append({"ok": ok, "gap": gap, "budget": budget, "kept": sel.kept_params})
    return out


CLAIM = numerical_claim(
    run,
    name="apt_budget_search",
    title="APT: the budget search keeps at most the budget, within one block of it",
    source="Zhao, Hajishirzi & Cao (ICML 2024), APT, Sec. 4.2 (parameter-constrained search)",
    family="compression",
    seed=SEED,
    tolerance="exact (integer parameter counts)",
    requires=("kernelapprox.compression.pruning",),
    verifies=(
        "kernelapprox.compression.pruning.selection.select_blocks",
        "kernelapprox.compression.pruning.selection.select_masks",
        "kernelapprox.compression.pruning.hidden.HiddenDims",
    ),
)
