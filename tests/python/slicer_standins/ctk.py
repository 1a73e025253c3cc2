"""Stand-in for Slicer's `ctk` module (BrainSAM uses ctk widgets only through its .ui file)."""
