import os
from types import SimpleNamespace

import pytest
from accelerate.utils import DistributedType

from subcell_hf.utils.processes import check_distributed, use_cpu_processes


def test_cpu_process_group_when_asked_or_without_cuda(monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert use_cpu_processes() is False
    assert use_cpu_processes(device="cpu") is True
    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")
    assert use_cpu_processes() is True
    monkeypatch.delenv("ACCELERATE_USE_CPU")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert use_cpu_processes() is True


def test_never_for_deepspeed_launches(monkeypatch):
    """`cpu=True` would silently turn DeepSpeed off (accelerate drops DeepSpeed when the CPU is forced), so
    DeepSpeed launches keep their own group."""
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")
    assert use_cpu_processes(device="cpu") is False


def test_processes_that_would_run_alone_are_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match=r"2 processes were launched .*distributed type NO.*ACCELERATE_USE_CPU=1"):
        check_distributed(SimpleNamespace(distributed_type=DistributedType.NO))
    check_distributed(SimpleNamespace(distributed_type=DistributedType.MULTI_CPU))
    monkeypatch.setenv("WORLD_SIZE", "1")
    check_distributed(SimpleNamespace(distributed_type=DistributedType.NO))


def test_deepspeed_is_told_the_cpu_accelerator_only_without_cuda(monkeypatch):
    from subcell_hf.utils.processes import quiet_deepspeed_probe

    monkeypatch.delenv("DS_ACCELERATOR", raising=False)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    quiet_deepspeed_probe()
    assert "DS_ACCELERATOR" not in os.environ
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    quiet_deepspeed_probe()
    assert os.environ["DS_ACCELERATOR"] == "cpu"
