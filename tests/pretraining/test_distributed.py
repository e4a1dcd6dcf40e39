"""The contrastive losses over features gathered from 2 processes equal the single-process losses on the same
global batch, and so do the gradients after the data-parallel average; the model's projectors see each view's
gathered batch (BatchNorm statistics global and per view).

Two real processes (gloo), started with `spawn`: forking a process that has already run OpenMP kernels (as the
test session has) deadlocks libgomp in the child."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from subcell_hf.pretraining.distributed import gather_across_processes
from subcell_hf.pretraining.losses import nt_xent_loss, supcon_loss

CELLS, DIMENSION = 8, 16


def _global_batch():
    generator = torch.Generator().manual_seed(0)
    first = torch.randn(CELLS, DIMENSION, generator=generator)
    second = torch.randn(CELLS, DIMENSION, generator=generator)
    antibodies = torch.tensor([0, 0, 1, 1, 2, 3, 3, 3])
    return first, second, antibodies


def _losses(first, second, antibodies, gather):
    cell = nt_xent_loss(gather(first), gather(second), temperature=0.1)
    protein = supcon_loss(gather(torch.cat([first, second])), gather(antibodies.repeat(2)), temperature=0.1)
    return cell, protein


def _compare_with_single_process(rank: int, store_path: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", store=dist.FileStore(store_path, 2), rank=rank, world_size=2)
    size = dist.get_world_size()
    assert size == 2
    first, second, antibodies = _global_batch()
    rows = slice(rank * CELLS // size, (rank + 1) * CELLS // size)
    for index in range(2):  # NT-Xent, then SupCon
        full = [first.clone().requires_grad_(), second.clone().requires_grad_()]
        expected = _losses(*full, antibodies, lambda t: t)[index]
        expected.backward()
        local = [full[0][rows].detach().requires_grad_(), full[1][rows].detach().requires_grad_()]
        gathered = _losses(*local, antibodies[rows], gather_across_processes)[index]
        gathered.backward()
        torch.testing.assert_close(gathered, expected)
        for mine, reference in zip(local, full):
            # what DDP / DeepSpeed do to every gradient: average over processes
            torch.testing.assert_close(mine.grad / size, reference.grad[rows])
    _projectors_on_gathered_views(rank)  # same processes: each start costs seconds
    dist.barrier()


@pytest.mark.slow
def test_gathered_losses_and_projector_statistics_equal_single_process_ones(tmp_path):
    mp.start_processes(
        _compare_with_single_process, args=(str(tmp_path / "store"),), nprocs=2, start_method="spawn"
    )


def _projectors_on_gathered_views(rank: int) -> None:
    """Each process holds half of the global batch; the model gathers each view's embeddings and projects each
    view's global batch: losses and the projectors' BatchNorm running statistics equal one process's on all cells."""
    from subcell_hf.pretraining import SubCellForPreTraining
    from tests.utils import tiny_pretraining_config

    config = tiny_pretraining_config(reconstruction_weight=0.0, pool_dropout=0.0)  # NT-Xent + SupCon, no masking
    generator = torch.Generator().manual_seed(0)
    views = [torch.rand(CELLS, 4, 64, 64, generator=generator) for _ in range(2)]
    antibodies = torch.tensor([0, 0, 1, 1, 2, 3, 3, 3])
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(SubCellForPreTraining(config).train())
    rows = slice(rank * CELLS // 2, (rank + 1) * CELLS // 2)
    local = models[0](views[0][rows], views[1][rows], antibodies[rows])
    alone = models[1](views[0], views[1], antibodies, gather_across_processes=False)
    torch.testing.assert_close(local.cell_contrastive_loss, alone.cell_contrastive_loss)
    torch.testing.assert_close(local.protein_contrastive_loss, alone.protein_contrastive_loss)
    for name, buffer in models[1].named_buffers():
        if "running" in name:  # global, per-view batch statistics (today: each process's local concatenation)
            torch.testing.assert_close(dict(models[0].named_buffers())[name], buffer, msg=name)
