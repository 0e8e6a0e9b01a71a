"""Autograding on a Dask cluster (``--scheduler``) into a PostgreSQL gradebook.

A LocalCluster with two worker processes (one thread each) grades a 40-submission class of the tiny
``atk_tiny`` assignment, faults included (infinite loop, ``os._exit``, memory bomb, syntax error);
one worker is killed with SIGKILL mid-batch. The grades, read through nbgrader's Gradebook API,
must equal those of the local process pool writing to SQLite, and those the variants deserve.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import gradingbatch as gbatch
import pytest
from pg import postgres_fixture  # noqa: F401  (the `postgres` fixture: a throwaway server)
from skips import need_sandbox

pytestmark = pytest.mark.xdist_group("cluster")

distributed = pytest.importorskip("dask.distributed",
                                  reason="Dask is not installed (pip install -e '.[cluster]')")


@pytest.fixture(scope="module")
def cluster():
    need_sandbox()
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=":0", host="127.0.0.1") as lc:
        with distributed.Client(lc) as client:
            client.wait_for_workers(2, timeout=120)
            yield lc, client


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """The class, and its grades from the local process pool into SQLite (the reference)."""
    need_sandbox()
    root = tmp_path_factory.mktemp("class")
    course = root / "local"
    deserved = gbatch.make_course(course)
    db = f"sqlite:///{course / 'gradebook.db'}"
    seconds, _ = gbatch.run_autograde(course, db, "--jobs", "2")
    return {"root": root, "course": course, "deserved": deserved, "local": gbatch.scores(db),
            "local_s": seconds}


def test_local_reference_scores_what_each_submission_deserves(batch):
    assert len(batch["local"]) == len(gbatch.MIX) >= 40
    got = {s: v[0] for s, v in batch["local"].items()}
    assert got == batch["deserved"]
    assert all(v[1] == 3.0 for v in batch["local"].values())
    faults = [s for s in batch["local"] if s.endswith(("infinite_loop", "os_exit", "memory_bomb"))]
    assert faults and all(batch["local"][s][2] for s in faults)  # flagged


def _results(course) -> int:
    return sum(1 for _ in (course / "autograded").glob(f"*/{gbatch.ASSIGNMENT}/results.json"))


def _grade_killing_one_worker(cmd, client, pick, timeout: float, poll: float = 0.1):
    """Run ``cmd`` (an autograde) and SIGKILL the worker process that ``pick`` names, once.

    ``pick(processing)`` gets the scheduler's ``{worker: task keys}`` and returns a worker
    address, or None to wait. Returns (output, seconds, (worker, its keys) or None).
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=gbatch.ROOT, env=gbatch.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    killed = None
    try:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if killed is None:
                processing = client.processing()
                addr = pick(processing)
                if addr is not None:
                    pid = client.run(os.getpid, workers=[addr])[addr]
                    os.kill(pid, signal.SIGKILL)  # kill -9 the worker process mid-task
                    killed = (addr, processing[addr])
            time.sleep(poll)
        out, _ = proc.communicate(timeout=max(1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-4000:]
    return out, time.perf_counter() - t0, killed


def test_cluster_with_a_killed_worker_grades_like_the_local_pool(batch, cluster, postgres):
    lc, client = cluster
    course = batch["root"] / "cluster"
    shutil.copytree(batch["course"] / "submitted", course / "submitted")
    db = postgres.create_database("cluster_batch")
    before = set(client.scheduler_info()["workers"])

    done_at_kill = []

    def pick(processing):
        busy = sorted(w for w, keys in processing.items()
                      if any(str(k).startswith("tconv-grade-") for k in keys))
        if busy and _results(course) >= 3:
            done_at_kill.append(_results(course))
            return busy[0]
        return None

    out, seconds, killed = _grade_killing_one_worker(
        gbatch.autograde_cmd(course, db, "--scheduler", lc.scheduler_address), client, pick, 400)
    print(f"local pool (2 jobs, SQLite): {batch['local_s']:.1f} s; LocalCluster (2 workers, "
          f"PostgreSQL, one worker killed): {seconds:.1f} s")

    assert killed is not None, "the batch finished before a worker could be killed"
    addr, keys = killed
    assert done_at_kill[0] < len(gbatch.MIX), "the kill did not happen mid-batch"
    # the nanny replaced the killed worker; its tasks ran again elsewhere
    client.wait_for_workers(2, timeout=120)
    assert addr not in client.scheduler_info()["workers"] and addr in before

    got = gbatch.scores(db)
    diff = {s: (got.get(s), batch["local"].get(s)) for s in set(got) | set(batch["local"])
            if got.get(s) != batch["local"].get(s)}
    # every score, max score, flag and cell, read through the Gradebook API
    assert not diff, f"cluster vs local pool: {diff}\nkilled: {killed}\n{out[-3000:]}"
    assert _results(course) == len(gbatch.MIX)
    # each submission is in the gradebook exactly once
    from grader.dbretry import open_gradebook

    with open_gradebook(db, course_id="tconv") as gb:
        assert len(gb.find_assignment(gbatch.ASSIGNMENT).submissions) == len(gbatch.MIX)
        assert len(gb.students) == len(gbatch.MIX)


def test_preflight_stops_before_grading_on_a_bad_worker(cluster, monkeypatch):
    from grader import distributed as gd

    _, client = cluster
    infos = gd.preflight(client, sandbox=True)
    assert len(infos) == 2 and all(not i["problems"] for i in infos.values())
    # a worker without bubblewrap is named, with the reason
    def break_sandbox(broken):  # runs on the worker (a local function: shipped by value)
        import os

        from grader import sandbox

        if broken:
            os.environ["TCONV_SAVED_PATH"] = os.environ["PATH"]
            os.environ["PATH"] = "/nonexistent"
        else:
            os.environ["PATH"] = os.environ.pop("TCONV_SAVED_PATH")
        sandbox.available.cache_clear()

    addr = sorted(infos)[0]
    client.run(break_sandbox, True, workers=[addr])
    try:
        with pytest.raises(gd.ClusterError) as err:
            gd.preflight(client, sandbox=True)
    finally:
        client.run(break_sandbox, False, workers=[addr])
    assert str(err.value).startswith("1 of 2 Dask worker(s) cannot grade:")
    assert f"{addr} (" in str(err.value) and "bubblewrap (bwrap) is not installed" in str(err.value)
    assert gd.preflight(client, sandbox=True)  # repaired
    # a worker whose grader sources differ from the client's (another version) is refused
    monkeypatch.setattr(gd, "grader_digest", lambda *a: "0" * 16)
    with pytest.raises(gd.ClusterError, match=r"(?s)2 of 2 Dask worker\(s\) cannot grade:"
                                              r".*grader sources differ"):
        gd.preflight(client, sandbox=True)


def test_unreachable_scheduler_is_a_clear_error():
    from grader.distributed import ClusterError, connect

    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler"):
        connect("tcp://127.0.0.1:9", timeout=1)


def _break_sandbox(broken):  # runs on a worker (a local function of this module: by value)
    import os

    from grader import sandbox

    if broken:
        os.environ["TCONV_SAVED_PATH"] = os.environ["PATH"]
        os.environ["PATH"] = "/nonexistent"
    else:
        os.environ["PATH"] = os.environ.pop("TCONV_SAVED_PATH")
    sandbox.available.cache_clear()


def test_cli_stops_before_grading_when_a_worker_has_no_sandbox(cluster, postgres, tmp_path):
    """`autograde --scheduler` with one worker lacking bubblewrap: exit 2, one clear line naming
    the worker and the reason, and nothing graded (no results, no submissions in the gradebook)."""
    lc, client = cluster
    gbatch.make_course(tmp_path, ["correct", "triple"])
    db = postgres.create_database("bad_worker")
    addr = sorted(client.scheduler_info()["workers"])[0]
    client.run(_break_sandbox, True, workers=[addr])
    try:
        res = subprocess.run(gbatch.autograde_cmd(tmp_path, db, "--scheduler",
                                                  lc.scheduler_address),
                             cwd=gbatch.ROOT, env=gbatch.env(), capture_output=True, text=True,
                             timeout=300)
    finally:
        client.run(_break_sandbox, False, workers=[addr])
    assert res.returncode == 2, res.stdout + res.stderr
    assert "tconv-grader autograde: error: 1 of 2 Dask worker(s) cannot grade:" in res.stderr
    assert f"{addr} (" in res.stderr and "bubblewrap (bwrap) is not installed" in res.stderr
    assert not list((tmp_path / "autograded").glob("*/*/results.json"))
    from grader.dbretry import open_gradebook

    with open_gradebook(db, course_id="tconv") as gb:
        assert not any(a.submissions for a in gb.assignments)


def test_a_task_that_keeps_killing_workers_scores_zero_and_the_batch_goes_on(tmp_path,
                                                                           postgres):
    """With allowed-failures 0 the scheduler gives up on a task whose worker dies (KilledWorker):
    that submission scores 0 with a flag, every other one is graded as it deserves."""
    need_sandbox()
    import dask

    deserved = gbatch.make_course(tmp_path, ["infinite_loop", "correct", "triple", "correct"])
    victim = next(s for s in deserved if s.endswith("infinite_loop"))
    db = postgres.create_database("killed_worker")

    # Tasks are submitted one by one, so a worker seen running the victim alone can be handed
    # another task a moment later. Kill only once every task is placed (in the scheduler's
    # processing map, or graded), with work stealing off so nothing moves after that: every
    # task on the killed worker then is in the snapshot, and each of them (the victim, and
    # whatever shared its worker) must come out as KilledWorker, the rest as deserved.
    def pick(processing):
        placed = sum(len(keys) for keys in processing.values()) + _results(tmp_path)
        if placed < len(deserved):
            return None
        return next((w for w, keys in processing.items()
                     if any(victim in str(k) for k in keys)), None)

    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.scheduler.work-stealing": False}), \
            distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                     dashboard_address=":0", host="127.0.0.1") as lc, \
            distributed.Client(lc) as client:
        client.wait_for_workers(2, timeout=120)
        out, _, killed = _grade_killing_one_worker(
            gbatch.autograde_cmd(tmp_path, db, "--scheduler", lc.scheduler_address), client,
            pick, 300, poll=0.05)
    assert killed, "the victim's task was never seen running"
    lost = {s for s in deserved if any(s in str(k) for k in killed[1])}
    assert victim in lost and len(lost) < len(deserved), (killed, lost)
    got = gbatch.scores(db)
    assert {s: v[0] for s, v in got.items()} == {s: 0.0 if s in lost else v
                                                 for s, v in deserved.items()}, (killed, out)
    import json

    for s in lost:
        rec = json.loads((tmp_path / "autograded" / s / gbatch.ASSIGNMENT / "results.json")
                         .read_text())
        assert got[s][2] and any("KilledWorker" in f for f in rec["flags"]), rec["flags"]
    assert not any(got[s][2] for s in deserved if s not in lost), got
