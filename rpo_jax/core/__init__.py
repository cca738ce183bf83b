"""Pure functions of arrays, no I/O and no configuration: the mathematics of the two papers.

GAE (:mod:`~rpo_jax.core.gae`); the clipped PPO loss (:mod:`~rpo_jax.core.ppo`) and RPO's
perturbed-mean policy (:mod:`~rpo_jax.core.rpo`, RPO paper Eq. 4); TRPO's conjugate gradient and
line search (:mod:`~rpo_jax.core.trpo`); the action distributions (Gaussian, Laplace, Gumbel);
RAD / DrAC augmentation; projected gradient ascent in an eps-ball (:mod:`~rpo_jax.core.pgd`),
the divergences and SR^2L penalties built on it (:mod:`~rpo_jax.core.divergences`,
:mod:`~rpo_jax.core.smoothness`) and the observation attacks (:mod:`~rpo_jax.core.attacks`);
networks, observation / reward normalisation, the replay buffer and the population batching rule.

The bottom layer: its modules import only each other (and ``rpo_jax.errors``); every layer above
may use them (tests/test_layers.py).
"""
