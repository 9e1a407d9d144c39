"""What a control image adds to a generated PNG's parameters, as A1111's ControlNet extension writes it."""

from __future__ import annotations

from . import messages


def png_fields(control: messages.Control | None) -> dict[str, str]:
    """`ControlNet 0: "Module: canny, Model: <stem>, Weight: 0.9, Resize Mode: Just Resize"`.

    A subset of the extension's unit text: the library has no guidance start/end or control mode.
    """
    if control is None:
        return {}
    unit = {
        "Module": "canny" if control.canny else "none",
        "Model": control.model_name,
        "Weight": f"{control.strength:g}",
        "Resize Mode": "Just Resize",
    }
    return {"ControlNet 0": ", ".join(f"{key}: {value}" for key, value in unit.items())}
