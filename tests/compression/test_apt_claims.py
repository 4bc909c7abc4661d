"""The APT claims of proofs/ hold on the package code and fail on planted bugs."""

from __future__ import annotations

import torch

import proofs.apt_budget_search as budget_claim
import proofs.apt_rank_growth as growth_claim
import proofs.apt_salience_bound as bound_claim
from kernelapprox.compression.pruning import adapters, salience, selection


def test_salience_bound_holds_and_catches_a_compressed_form_without_abs(monkeypatch):
    verdict = bound_claim.run()
    assert verdict.status == "holds", verdict.summary

    def add_without_abs(self, h, g):
        h64 = h.detach().reshape(-1, h.shape[-1]).to(torch.float64)
        g64 = g.detach().reshape(-1, g.shape[-1]).to(torch.float64)
        self.abs_h += h64.sum(0)  # planted bug: sum H instead of sum |H|
        self.abs_g += g64.abs().sum(0)
        self.hg += (h64 * g64).sum(0)

    monkeypatch.setattr(salience._Accumulator, "add", add_without_abs)
    assert bound_claim.run().status == "fails"


def test_rank_growth_holds_and_catches_an_unscaled_alpha(monkeypatch):
    verdict = growth_claim.run()
    assert verdict.status == "holds", verdict.summary
    grow = adapters.GrowingLoRALinear.grow

    def grow_keeping_alpha(self, new_rank, *, seed=0):
        alpha = self.alpha
        grow(self, new_rank, seed=seed)
        self.alpha = alpha  # planted bug: alpha / r' shrinks the adapter

    monkeypatch.setattr(adapters.GrowingLoRALinear, "grow", grow_keeping_alpha)
    assert growth_claim.run().status == "fails"


def test_budget_search_holds_and_catches_an_off_by_one(monkeypatch):
    verdict = budget_claim.run()
    assert verdict.status == "holds", verdict.summary
    search = selection.prefix_length
    monkeypatch.setattr(
        selection, "prefix_length", lambda c, b: min(search(c, b) + 1, int(c.numel()))
    )
    assert budget_claim.run().status == "fails"
