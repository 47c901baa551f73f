"""corenet's built-in protocol plugins (installed as ``corenet.protocols``)."""
