"""Example actions: small, deterministic, and runnable with no network."""

from __future__ import annotations

import hashlib
import statistics
from typing import Any

from engine.actions import ActionContext, action


@action
def lint(ctx: ActionContext) -> dict[str, Any]:
    """Pretend to lint the service: report a stable score derived from its name."""
    service = str(ctx.inputs.get("service", ""))
    score = int(hashlib.sha256(service.encode()).hexdigest(), 16) % 10
    return {"service": service, "warnings": score, "passed": True}


@action
def check_budget(ctx: ActionContext) -> dict[str, Any]:
    """Decide whether an order needs an approval: above the threshold it does."""
    amount = float(ctx.inputs.get("amount", 0))
    threshold = float(ctx.params.get("threshold", 500))
    return {"amount": amount, "needs_approval": amount >= threshold}


@action
async def extract(ctx: ActionContext) -> dict[str, Any]:
    """Produce a deterministic batch of records for one partition of the data pipeline."""
    partition = str(ctx.item)
    seed = int(hashlib.sha256(partition.encode()).hexdigest()[:8], 16)
    values = [(seed >> shift) % 100 for shift in range(0, 24, 3)]
    return {"partition": partition, "rows": len(values), "mean": statistics.fmean(values)}


@action
def summarise(ctx: ActionContext) -> dict[str, Any]:
    """Fold the per-partition results into one report."""
    parts = ctx.params.get("parts") or []
    rows = sum(int(p.get("rows", 0)) for p in parts)
    means = [float(p.get("mean", 0)) for p in parts]
    overall = round(statistics.fmean(means), 2) if means else 0.0
    return {"partitions": len(parts), "rows": rows, "mean": overall}


@action
async def noop(ctx: ActionContext) -> dict[str, Any]:
    """Do nothing; used by benchmarks to measure the engine's own overhead."""
    return {}


@action
def place_order(ctx: ActionContext) -> dict[str, Any]:
    """Place a purchase order; its id comes from the idempotency key, so a retry places no second order."""
    item = str(ctx.params.get("item", ""))
    amount = float(ctx.params.get("amount", 0))
    order_id = "PO-" + hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:8].upper()
    return {"order_id": order_id, "item": item, "amount": amount, "status": "placed"}


@action
def cancel_order(ctx: ActionContext) -> dict[str, Any]:
    """Undo ``place_order``: cancel the order it placed (a no-op for an order that is already cancelled)."""
    order_id = str(ctx.params.get("order_id", ""))
    if not order_id:
        raise ValueError("cancel_order needs the order_id that place_order returned")
    return {"order_id": order_id, "status": "cancelled"}
