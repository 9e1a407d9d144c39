"""What a control image adds to a generated PNG's parameters, as A1111's ControlNet extension writes it."""

from __future__ import annotations

from . import messages


def png_fields(control: messages.Control | None) -> dict[str, str]:
    """`ControlNet 0: "Module: canny, Model: <name> [<hash>], Weight: 0.9, Resize Mode: Just Resize,
    Guidance Start: 0.0, Guidance End: 1.0, Control Mode: Balanced"`, which A1111 pastes back into a unit.

    The extension's fields, in its order, that hold here: the library applies the control at every
    step (start 0, end 1) and to the conditional and unconditional passes alike ("Balanced"). Its
    canny thresholds are on another scale than the library's, so they are left out. Numbers as
    Python writes floats, as the extension does.
    """
    if control is None:
        return {}
    unit = {
        "Module": "canny" if control.canny else "none",
        "Model": control.model_name,
        "Weight": repr(float(control.strength)),
        "Resize Mode": "Just Resize",
        "Guidance Start": "0.0",
        "Guidance End": "1.0",
        "Control Mode": "Balanced",
    }
    return {"ControlNet 0": ", ".join(f"{key}: {value}" for key, value in unit.items())}
