"""One torch thread per test: the networks here are tiny, and on a shared 2-core machine several
OpenMP threads spin-wait against other processes and run many times slower."""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
