"""Populations: K independent agents of one environment and config, one per seed, trained in one process.

`Population` (`reinforce.population.members`) and `train_population` (`reinforce.population.train`) train them;
the batched computations under them, one policy call per env step and one backward per round of updates, are
`reinforce.population.batched`.
"""

from reinforce.population.batched import policy_step, population_act
from reinforce.population.members import Population
from reinforce.population.train import train_population
from reinforce.run.files import MEMBER_DIR

__all__ = ["MEMBER_DIR", "Population", "policy_step", "population_act", "train_population"]
