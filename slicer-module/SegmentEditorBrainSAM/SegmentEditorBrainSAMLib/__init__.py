"""The BrainSAM Segment Editor effect (loaded by Slicer from SegmentEditorEffect.py)."""
