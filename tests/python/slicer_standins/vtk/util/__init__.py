"""Stand-in for vtk.util."""
