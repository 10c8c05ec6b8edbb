"""Several Ray nodes on one machine (Ray's own multi-node harness, `ray.cluster_utils.Cluster`):
RL's rollout actors and the evaluation's episode runners spread over the nodes, and a node
removed mid-run loses no episode, counts none twice, and changes no result."""

import json
import threading

import pytest
from tiny import train_tiny

from embodied.data.source import DatasetConfig
from embodied.ray_utils import RaySettings
from embodied.refs import PolicyRef, WorldModelRef

pytestmark = [pytest.mark.ray, pytest.mark.sim]


@pytest.fixture(scope="module")
def models(recorded, tmp_path_factory):
    root, _ = recorded
    data = DatasetConfig(root=str(root))
    policy, world_model = train_tiny(data, tmp_path_factory.mktemp("cluster"))
    return policy, world_model, data


@pytest.fixture
def cluster():
    """A head that runs nothing and three worker nodes of 2 CPUs each; nodes that stop
    answering are declared dead within seconds."""
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()
    fast = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
            "health_check_failure_threshold": 2}  # fmt: skip
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 0, "_system_config": fast})  # fmt: skip
    for _ in range(3):
        cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def _actors(class_name: str, alive: bool = False) -> dict[str, str]:
    """Actor id -> node id of every actor of `class_name` (only the live ones: `alive`)."""
    from embodied.ray_utils import actor_table

    actors = actor_table(class_name).items()
    return {i: a["node"] for i, a in actors if a["state"] == "ALIVE" or not alive}


def _node_of(actor_id: str) -> str:
    from ray._private.state import actors

    return actors()[actor_id]["Address"]["NodeID"]


def _remove_node_of(cluster, actor_id: str) -> dict:
    """Remove the node `actor_id` runs on, in the background (as a node is lost: whatever
    runs there dies mid-task). The dict says which node went, and when."""
    removed: dict = {}
    threading.Thread(target=_lose_node, args=(cluster, actor_id, removed), daemon=True).start()
    return removed


def _lose_node(cluster, actor_id: str, removed: dict) -> None:
    import time

    node_id = _node_of(actor_id)
    cluster.remove_node(next(n for n in cluster.worker_nodes if n.node_id == node_id))
    removed.update(node=node_id, at=time.monotonic())


def _remove_when_busy(cluster, class_name: str, delay_s: float) -> dict:
    """In the background: once a new actor of `class_name` runs, wait `delay_s`, then
    remove its node from the cluster. The dict says which node went, and when."""
    import time

    before = set(_actors(class_name))
    removed: dict = {}

    def remove() -> None:
        while not (new := [a for a in _actors(class_name, alive=True) if a not in before]):
            time.sleep(0.2)
        time.sleep(delay_s)
        _lose_node(cluster, new[0], removed)

    threading.Thread(target=remove, daemon=True).start()
    return removed


def test_rl_spreads_over_nodes_and_a_lost_node_changes_nothing(models, cluster, tmp_path,
                                                               weights, monkeypatch,
                                                               fault_report):  # fmt: skip
    import time

    import ray
    import torch

    from embodied.ray_utils import actor_table
    from embodied.rl import rollout_worker
    from embodied.rl.finetune import AlgoSettings, FinetuneConfig, finetune

    policy, world_model, data = models

    def run(name: str):
        config = FinetuneConfig(
            iterations=3, horizon=10, save_every=1, policy=PolicyRef(str(policy)),
            world_model=WorldModelRef(str(world_model)), dataset=data,
            algo=AlgoSettings(group_size=4, starts=2, minibatch_size=16, lr=1e-3,
                              min_group_rate=-1.0, max_group_rate=2.0, entropy_coef=0.01),
            ray=RaySettings(num_workers=2, address=cluster.address),
            output_dir=str(tmp_path / name),
        )  # fmt: skip
        result = finetune(config)
        rows = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return weights(result), [json.loads(r) for r in rows]

    undisturbed, rows = run("undisturbed")
    spread = list(_actors("WorkerActor").values())
    assert len(spread) == 2 and len(set(spread)) == 2  # one actor on each of two nodes
    sample, lost, calls = rollout_worker.Workers.sample, [], []

    def sample_while_a_node_goes(self, *args):  # iteration 2: actor 0's node is lost
        calls.append(1)
        if len(calls) == 2:
            actor = self.actors[0]._actor_id.hex()
            lost.append((actor, _remove_node_of(cluster, actor)))
        return sample(self, *args)

    monkeypatch.setattr(rollout_worker.Workers, "sample", sample_while_a_node_goes)
    disturbed, disturbed_rows = run("node_removed")
    finished = time.monotonic()
    ((actor, removed),) = lost
    assert removed["at"] < finished  # the node went while RL ran, and its actor restarted
    assert actor_table("WorkerActor")[actor]["restarts"] >= 1
    assert len(cluster.worker_nodes) == 2
    assert [r["iteration"] for r in disturbed_rows] == [1, 2, 3]  # each iteration once
    assert [r["episodes"] for r in disturbed_rows] == [r["episodes"] for r in rows]
    same = all(torch.equal(undisturbed[k], disturbed[k]) for k in undisturbed)
    fault_report("node removed", "during RL", "survived" if same else "results changed")
    assert same
    ray.shutdown()


def test_evaluation_spreads_over_nodes_and_a_lost_node_loses_no_episode(models, cluster,
                                                                        tmp_path,
                                                                        fault_report):  # fmt: skip
    import time

    from embodied.evaluate import EvalConfig, evaluate
    from embodied.mujoco_eval import EnvSettings, EvalSettings

    policy = models[0]

    def run(name: str) -> list[tuple]:
        evaluate(EvalConfig(
            policy=PolicyRef(str(policy)), env=EnvSettings(task="lift"),
            eval=EvalSettings(n_episodes=8, videos=0, batch_size=1),
            ray=RaySettings(num_workers=2, address=cluster.address),
            output_dir=str(tmp_path / name)))  # fmt: skip
        rows = (tmp_path / name / "episodes.jsonl").read_text().splitlines()
        return [(r["seed"], r["success"], r["length"]) for r in map(json.loads, rows)]

    undisturbed = run("undisturbed")
    assert len(set(_actors("EpisodeRunner").values())) == 2
    removed = _remove_when_busy(cluster, "EpisodeRunner", delay_s=3.0)
    disturbed = run("node_removed")
    assert removed and removed["at"] < time.monotonic()
    same = sorted(disturbed) == sorted(undisturbed)  # every seed once, the same outcomes
    fault_report("node removed", "during evaluation", "survived" if same else "episodes differ")
    assert same
    assert len({s for s, _, _ in disturbed}) == 8


def test_paths_every_node_must_see_are_checked_before_work(cluster, tmp_path):
    from embodied.ray_utils import connect, require_shared
    from embodied.types import UserInputError

    connect(cluster.address)
    (tmp_path / "policy").mkdir()
    require_shared(reads={"--policy.path": str(tmp_path / "policy")},
                   writes={"--output_dir": str(tmp_path / "out")})  # fmt: skip
    assert list((tmp_path / "out").iterdir()) == []  # the check leaves nothing behind
    with pytest.raises(UserInputError, match=r"--policy.path .* node\(s\) \[.+\] cannot see it"):
        require_shared(reads={"--policy.path": str(tmp_path / "on_another_machine")})


def test_a_killed_training_worker_resumes_from_the_last_checkpoint(recorded, cluster, tmp_path,
                                                                   fault_report):  # fmt: skip
    """Ray Train, data-parallel over two nodes: one worker's process is SIGKILLed mid-run;
    Ray Train restarts the group (FailureConfig) and it resumes from the last checkpoint in
    the shared output_dir, every step logged once."""
    import os
    import signal
    import time

    from ray._private.state import actors
    from tiny import POLICY

    from embodied.train_policy import TrainPolicyConfig, train_policy

    metrics, killed = tmp_path / "run/metrics.jsonl", []

    def kill_a_worker_midway() -> None:
        while not metrics.is_file() or len(metrics.read_text().splitlines()) < 15:
            time.sleep(0.1)
        pid = next(a["Pid"] for a in actors().values()
                   if "TrainWorker" in a["ActorClassName"] and a["State"] == "ALIVE")  # fmt: skip
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    threading.Thread(target=kill_a_worker_midway, daemon=True).start()
    train_policy(TrainPolicyConfig(
        dataset=DatasetConfig(root=str(recorded[0])), output_dir=str(tmp_path / "run"),
        policy=dict(POLICY), steps=80, batch_size=4, log_every=1, save_every=10,
        ray=RaySettings(num_workers=2, address=cluster.address)))  # fmt: skip
    steps = [json.loads(x)["step"] for x in metrics.read_text().splitlines()]
    survived = bool(killed) and steps == list(range(1, 81))
    fault_report("actor killed", "Ray Train worker", "survived" if survived else "lost")
    assert killed and steps == list(range(1, 81)), steps


@pytest.fixture
def gpu_cluster():
    """A head that runs nothing, a CPU node, and two nodes that declare one GPU each (Ray
    places by declared resources; torch sees no CUDA here, so work placed there computes on
    CPU)."""
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    cluster.add_node(num_cpus=2)
    gpu_nodes = [cluster.add_node(num_cpus=1, num_gpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    yield cluster, {n.node_id: n for n in gpu_nodes}
    ray.shutdown()
    cluster.shutdown()


def test_the_learner_asks_for_gpus_and_runs_where_they_are(models, recorded, gpu_cluster,
                                                          tmp_path, weights,
                                                          fault_report):  # fmt: skip
    """`--ray.learner_gpus=1`: the learner runs as a Ray task on a node with a GPU and ends
    where the learner in this process ends; when its node is lost it reruns on the other
    GPU node from the last checkpoint, to the same end; asking for more GPUs than the
    cluster has is one line, not a wait for ever."""
    import threading
    import time

    import torch

    from embodied.rl.finetune import AlgoSettings, FinetuneConfig, finetune
    from embodied.rl.placement import LEARNER_FILE
    from embodied.types import UserInputError

    cluster, gpu_nodes = gpu_cluster
    policy, world_model, data = models

    def config(name: str, learner_gpus: float) -> FinetuneConfig:
        return FinetuneConfig(
            iterations=2, horizon=10, save_every=1, policy=PolicyRef(str(policy)),
            world_model=WorldModelRef(str(world_model)), dataset=data,
            algo=AlgoSettings(group_size=4, starts=2, minibatch_size=16, lr=1e-3,
                              min_group_rate=-1.0, max_group_rate=2.0, entropy_coef=0.01),
            ray=RaySettings(num_workers=2, address=cluster.address, learner_gpus=learner_gpus),
            output_dir=str(tmp_path / name),
        )  # fmt: skip

    here = weights(finetune(config("here", 0)))
    assert not (tmp_path / "here" / LEARNER_FILE).exists()
    placed = weights(finetune(config("placed", 1)))
    where = json.loads((tmp_path / "placed" / LEARNER_FILE).read_text())
    assert where["node"] in gpu_nodes and where["device"] == "cpu" and where["gpu_ids"] == ["0"]
    assert all(torch.equal(here[k], placed[k]) for k in here)

    lost = tmp_path / "node_lost"
    removed: dict = {}

    def remove_the_learners_node() -> None:  # once the learner has landed (its actors start)
        while not (lost / LEARNER_FILE).exists():
            time.sleep(0.1)
        node = json.loads((lost / LEARNER_FILE).read_text())["node"]
        cluster.remove_node(gpu_nodes[node])
        removed["node"] = node

    threading.Thread(target=remove_the_learners_node, daemon=True).start()
    survived = weights(finetune(config("node_lost", 1)))
    rerun_on = json.loads((lost / LEARNER_FILE).read_text())["node"]
    assert removed and rerun_on in gpu_nodes and rerun_on != removed["node"]
    rows = [json.loads(r)["iteration"] for r in (lost / "metrics.jsonl").read_text().splitlines()]
    same = rows == [1, 2] and all(torch.equal(here[k], survived[k]) for k in here)
    fault_report("node removed", "under the learner", "survived" if same else "results changed")
    assert same
    with pytest.raises(UserInputError, match=r"ask\(s\) Ray for 2 GPU\(s\); the cluster has 1"):
        finetune(config("too_many", 2))
    from embodied.train_policy import TrainPolicyConfig, train_policy

    with pytest.raises(UserInputError, match=r"ask\(s\) Ray for 2 GPU\(s\); the cluster has 1"):
        train_policy(
            TrainPolicyConfig(  # Ray Train workers ask as well
                dataset=DatasetConfig(root=str(recorded[0])),
                output_dir=str(tmp_path / "train"),
                steps=1,
                device="cuda",
                ray=RaySettings(num_workers=2, address=cluster.address),
            )
        )
