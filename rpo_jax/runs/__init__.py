"""Runs on disk: configs read from YAML, run directories, checkpoints and resume, outputs, loggers.

:mod:`~rpo_jax.runs.config_io` (YAML, ``--set`` overrides, presets -> a checked
``ExperimentConfig``) and :mod:`~rpo_jax.runs.options` (the option table); :mod:`~rpo_jax.runs.launch`
(``train`` / ``sweep`` / ``resume``), :mod:`~rpo_jax.runs.suite` and :mod:`~rpo_jax.runs.plan`;
:mod:`~rpo_jax.runs.rundir` (lock, status, staged overwrite), :mod:`~rpo_jax.runs.durable`
(chunks, periodic checkpoints, exact resume, signals), :mod:`~rpo_jax.runs.results` (atomic files,
metrics, orbax checkpoints), :mod:`~rpo_jax.runs.run_outputs` and :mod:`~rpo_jax.runs.plots`
(summary and figures of a run), :mod:`~rpo_jax.runs.tracking` (TensorBoard, W&B),
:mod:`~rpo_jax.runs.cache` (the XLA compilation cache); a finished run read back:
:mod:`~rpo_jax.runs.finished` and :mod:`~rpo_jax.runs.policy` (``rpo_jax.load_policy``).

Imports every layer below (``training`` included); ``analysis`` and ``cli`` use it.
"""
