"""Many tasks at once: joint multi-task models (a shared part and a part per task)."""
