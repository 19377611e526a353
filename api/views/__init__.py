"""Views of the integrator API: each parses its input, calls one service or selector, and shapes the answer."""
