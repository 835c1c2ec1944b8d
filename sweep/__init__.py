"""sweep: precision-matrix sweep orchestrator for deep-learning inference."""
