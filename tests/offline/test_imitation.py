"""Few-expert data: episode split, the expert / mixed datasets and the two samplers."""

import jax
import numpy as np
import pytest

from jaxrl_llm.offline import imitation
from jaxrl_llm.offline.types import Transitions


def episodes_data(lengths, tag):
  """Episodes of the given lengths; observations hold (tag, episode index, step)."""
  obs, nxt, terminals, timeouts = [], [], [], []
  for e, length in enumerate(lengths):
    for t in range(length):
      obs.append([tag, e, t])
      nxt.append([tag, e, t + 1])
      terminals.append(0.0)
      timeouts.append(1.0 if t == length - 1 else 0.0)
  n = len(obs)
  return Transitions(np.asarray(obs, np.float32), np.zeros((n, 2), np.float32),
                     np.zeros(n, np.float32), np.asarray(nxt, np.float32),
                     np.asarray(terminals, np.float32), np.asarray(timeouts, np.float32))


def test_split_episodes_cuts_at_episode_ends():
  data = episodes_data([3, 2, 4], tag=1)
  head, tail = imitation.split_episodes(data, 2)
  np.testing.assert_array_equal(head.observations[:, 1], [0, 0, 0, 1, 1])
  np.testing.assert_array_equal(tail.observations[:, 1], [2, 2, 2, 2])
  empty, everything = imitation.split_episodes(data, 0)
  assert empty.observations.shape[0] == 0 and everything.observations.shape[0] == 9
  with pytest.raises(ValueError, match=r"num_episodes must lie in \[0, 3\]"):
    imitation.split_episodes(data, 4)


def test_few_expert_data_labels_only_the_first_episodes():
  expert = episodes_data([3, 2, 4, 5], tag=1)
  random = episodes_data([6], tag=0)
  data = imitation.few_expert_data(expert, random, num_expert_episodes=1,
                                   num_unlabelled_expert_episodes=2)
  np.testing.assert_array_equal(data.expert.observations[:, 1], [0, 0, 0])
  np.testing.assert_array_equal(data.expert.observations[:, 0], [1, 1, 1])
  # mixed = the random episode + expert episodes 1 and 2 (unlabelled); episode 3 unused.
  np.testing.assert_array_equal(data.mixed.observations[:, 0], [0] * 6 + [1] * 6)
  np.testing.assert_array_equal(data.mixed.observations[6:, 1], [1, 1, 2, 2, 2, 2])
  only_random = imitation.few_expert_data(expert, random)
  assert only_random.mixed.observations.shape[0] == 6
  with pytest.raises(ValueError, match="num_expert_episodes"):
    imitation.few_expert_data(expert, random, num_expert_episodes=0)


def test_samplers_draw_the_expert_ratio_from_each_part():
  expert = episodes_data([5], tag=1)
  mixed = episodes_data([7, 7], tag=0)
  data = imitation.ExpertMixedBatch(expert, mixed)
  batches = imitation.sample_batches(jax.random.key(0), data, batch_size=8, num_batches=3,
                                     expert_ratio=0.25)
  assert batches.expert.observations.shape == (3, 2, 3)
  assert batches.mixed.observations.shape == (3, 6, 3)
  assert np.all(np.asarray(batches.expert.observations[..., 0]) == 1)
  assert np.all(np.asarray(batches.mixed.observations[..., 0]) == 0)
  one = imitation.sample_batch(jax.random.key(0), data, batch_size=10)
  assert one.expert.observations.shape == (5, 3) and one.mixed.observations.shape == (5, 3)
  sample = jax.jit(lambda k: imitation.sample_batches(k, data, 8, 2, 0.5))
  a, b = sample(jax.random.key(1)), sample(jax.random.key(1))
  np.testing.assert_array_equal(a.mixed.observations, b.mixed.observations)
  for ratio in (0.0, 1.0, 0.01):
    with pytest.raises(ValueError, match="expert_ratio"):
      imitation.sample_batches(jax.random.key(0), data, 8, 1, ratio)


def test_training_data_train_on_gives_one_part_with_the_plain_sampler():
  """`config.expert.train_on`: the single-part baselines read exactly ReCOIL's parts."""
  import ml_collections

  expert = episodes_data([3, 2, 4], tag=1)
  random = episodes_data([6], tag=0)
  config = ml_collections.ConfigDict(dict(batch_size=4, expert=dict(
      dataset_path="", dataset_format="synthetic", seed=0, num_labelled_episodes=1,
      num_unlabelled_episodes=1, expert_ratio=0.5, train_on="expert")))
  load = lambda source: expert
  part, sample = imitation.training_data(config, random, load)
  assert isinstance(part, Transitions)
  np.testing.assert_array_equal(part.observations[:, :2], [[1, 0]] * 3)  # expert episode 0
  assert sample(jax.random.key(0), part, 4, 2).observations.shape == (2, 4, 3)
  config.expert.train_on = "mixed"
  part, _ = imitation.training_data(config, random, load)
  # the random episode (6 steps) + expert episode 1 (2 steps), unlabelled
  np.testing.assert_array_equal(part.observations[:, 0], [0] * 6 + [1] * 2)
  np.testing.assert_array_equal(part.observations[6:, 1], [1, 1])
  config.expert.train_on = ""
  both, _ = imitation.training_data(config, random, load)
  assert isinstance(both, imitation.ExpertMixedBatch)
  config.expert.train_on = "labelled"
  with pytest.raises(ValueError, match="config.expert.train_on must be"):
    imitation.training_data(config, random, load)
