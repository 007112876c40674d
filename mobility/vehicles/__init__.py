"""Live vehicle state: trip geometry and timetable (schedule), the pure tracker (fix in,
state and events out), the scenario generator used as ground truth, and the worker."""
