"""The one channel-name check and its one message."""

from __future__ import annotations

import pytest

from subcell_hf.data.channels import ChannelMismatchError, check_channels


def test_check_channels_gives_indices_and_names_source_expected_found_and_missing():
    assert check_channels(["microtubules", "er", "dna", "protein"], ["dna", "protein"], "shard") == [2, 3]
    assert check_channels(["dna", "protein"], ["dna", "protein"], "processor", exact=True) == [0, 1]
    with pytest.raises(ChannelMismatchError) as error:
        check_channels(["er", "dna"], ["dna", "protein"], "record r0", hint="use a 2-channel model")
    assert str(error.value) == (
        "record r0: expected channels ['dna', 'protein'], found ['er', 'dna'] (missing ['protein']); "
        "use a 2-channel model"
    )
    with pytest.raises(ChannelMismatchError, match=r"expected channels \['dna', 'protein'\], found \['protein', 'dna'\]$"):
        check_channels(["protein", "dna"], ["dna", "protein"], "processor", exact=True)  # order matters when exact
    with pytest.raises(ChannelMismatchError):
        check_channels(["dna", "dna", "protein"], ["dna", "protein"], "x")  # a repeated channel is ambiguous
    with pytest.raises(KeyError, match="expected channels"):
        check_channels([], ["dna"], "x", error=KeyError)
