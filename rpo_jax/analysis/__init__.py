"""What is measured from finished runs: reports, statistics, robustness, evaluation, rendering.

:mod:`~rpo_jax.analysis.report` (with ``report_data``, ``report_tables``, ``pbt_report``) --
figures and tables of ``rpo-jax report``; :mod:`~rpo_jax.analysis.aggregate` -- IQM, bootstrap
CIs, probability of improvement; :mod:`~rpo_jax.analysis.reference` -- published numbers beside
ours; :mod:`~rpo_jax.analysis.evaluation` and :mod:`~rpo_jax.analysis.robustness` -- returns under
random and adversarial observation perturbations; :mod:`~rpo_jax.analysis.evaluate` -- fresh
episodes, on the training simulator or on dm_control; :mod:`~rpo_jax.analysis.render` -- videos.

Reads run directories through ``runs``; only ``cli`` sits above it.
"""
