"""Training: the loops that run an algorithm, and populations of them.

:mod:`~rpo_jax.training.train` -- the on-policy :class:`Trainer` as nested ``lax.scan``s (rollout,
GAE, the algorithm's update, divergence check), :func:`~rpo_jax.training.train.make_trainer`;
:mod:`~rpo_jax.training.off_policy` -- DDPG's loop (replay buffer in the jitted state);
:mod:`~rpo_jax.training.acting` -- a member as a policy function; :mod:`~rpo_jax.training.population`
-- seeds x hyperparameters vmapped in one program, sharded over devices, run in chunks;
:mod:`~rpo_jax.training.pbt` -- population-based training inside that program;
:mod:`~rpo_jax.training.multihost` -- the same population over several processes or hosts.

Imports ``core``, ``envs``, ``config`` and ``algorithms``; writes no file (that is ``runs``).
"""
