"""The jupyter-server extension (`AnodeApp`); its entry point is `anode_ext`'s."""
