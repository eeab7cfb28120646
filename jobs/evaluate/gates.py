"""Quality gates: the spec's conditions on test metrics, checked and described."""

from __future__ import annotations

from mlbatch.spec.evaluate import Gate


def check_gates(gates: list[Gate], metrics: dict[str, float]) -> list[dict]:
    """One result per gate: the gate, the measured value (None: undefined) and whether it passed."""
    return [
        {"gate": str(gate), "metric": gate.metric, "value": metrics.get(gate.metric),
         "passed": gate.passes(metrics.get(gate.metric))}
        for gate in gates
    ]  # fmt: skip


def failures(results: list[dict]) -> str:
    """The failed gates in one line, e.g. `roc_auc >= 0.9 (measured 0.7412)`."""
    return "; ".join(
        f"{r['gate']} (measured {'undefined' if r['value'] is None else format(r['value'], '.4f')})"
        for r in results
        if not r["passed"]
    )
