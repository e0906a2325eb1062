import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """The model tests use tiny tensors: one intra-op thread is faster, and immune to a busy second core."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
