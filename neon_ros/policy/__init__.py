"""The idea, no ROS: frozen-backbone features -> a small decoder -> relative actions.

Read in this order: ``embodiment`` (the robots whose demonstrations train the head),
``actions`` (relative-action math: T_rel = T_now^-1 T_future, 6D rotations, joint deltas,
normalisation), ``schema`` (a training sample: targets and loss masks per component),
``model`` (``HeadConfig`` and ``ActionHead``, one file, blocks bottom-up), ``soup``
(weighted sampling of many data sources), ``train`` (the train loop and held-out metrics).
"""
