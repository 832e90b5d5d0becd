"""The command-line verbs of `neon-ros` (demo, train, eval, features, export, bag2dataset,
teleop, assets, bench) and what only they use (child processes, the demo head)."""
