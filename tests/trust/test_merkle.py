"""RFC 6962 Merkle hashing against Certificate Transparency's published vectors, and properties.

Vectors: google/certificate-transparency-go, merkletree/merkle_verifier_test.go
(``getInputs``, ``getRoots``, ``getInclusionTestVector``, ``getConsistencyProofs``), the same as
Trillian's merkle/rfc6962 tests and RFC 6962's reference implementation.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trust import merkle

INPUTS = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
          "606162636465666768696a6b6c6d6e6f"]
ROOTS = [  # tree sizes 1..8
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = [  # (leaf index 0-based, tree size, path)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CONSISTENCY = [  # (old size, new size, proof)
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
LEAVES = [merkle.leaf_hash(bytes.fromhex(x)) for x in INPUTS]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert merkle.root([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_certificate_transparency(size: int) -> None:
    assert merkle.root(LEAVES[:size]).hex() == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_paths_match_and_verify(index: int, size: int, path: list[str]) -> None:
    proof = merkle.inclusion_proof(LEAVES[:size], index)
    assert [p.hex() for p in proof] == path
    root = bytes.fromhex(ROOTS[size - 1])
    assert merkle.verify_inclusion(LEAVES[index], index, size, proof, root)
    assert not merkle.verify_inclusion(LEAVES[index], index + 1, size, proof, root)
    assert not merkle.verify_inclusion(LEAVES[index], index, size * 2, proof, root)
    assert not merkle.verify_inclusion(merkle.leaf_hash(b"WrongLeaf"), index, size, proof, root)
    assert not merkle.verify_inclusion(LEAVES[index], index, size, [*proof, root], root)


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_consistency_proofs_match_and_verify(old: int, new: int, path: list[str]) -> None:
    proof = merkle.consistency_proof(LEAVES[:new], old)
    assert [p.hex() for p in proof] == path
    old_root, new_root = bytes.fromhex(ROOTS[old - 1]), bytes.fromhex(ROOTS[new - 1])
    assert merkle.verify_consistency(old, old_root, new, new_root, proof)
    assert not merkle.verify_consistency(old, new_root, new, old_root, proof)
    assert not merkle.verify_consistency(old + 1, old_root, new, new_root, proof)
    assert not merkle.verify_consistency(old, old_root, new, new_root, proof[:-1])


def test_out_of_range_requests_raise() -> None:
    with pytest.raises(ValueError, match="not in a tree of size 3"):
        merkle.inclusion_proof(LEAVES[:3], 3)
    with pytest.raises(ValueError, match="not within a tree of size 3"):
        merkle.consistency_proof(LEAVES[:3], 4)


def _flip(hashes: list[bytes], which: int, bit: int) -> list[bytes]:
    flipped = list(hashes)
    target = bytearray(flipped[which])
    target[bit // 8 % 32] ^= 1 << (bit % 8)
    flipped[which] = bytes(target)
    return flipped


trees = st.lists(st.binary(max_size=8), min_size=1, max_size=40).map(
    lambda data: [merkle.leaf_hash(d) for d in data])


@given(trees, st.data())
def test_every_inclusion_proof_verifies_and_a_flipped_bit_does_not(
        leaves: list[bytes], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = merkle.inclusion_proof(leaves, index)
    top = merkle.root(leaves)
    assert merkle.verify_inclusion(leaves[index], index, len(leaves), proof, top)
    bit = data.draw(st.integers(0, 255))
    assert not merkle.verify_inclusion(_flip([leaves[index]], 0, bit)[0], index, len(leaves),
                                       proof, top)
    assert not merkle.verify_inclusion(leaves[index], index, len(leaves), proof,
                                       _flip([top], 0, bit)[0])
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        assert not merkle.verify_inclusion(leaves[index], index, len(leaves),
                                           _flip(proof, which, bit), top)


@given(trees, st.data())
def test_every_consistency_proof_verifies_and_a_flipped_bit_does_not(
        leaves: list[bytes], data: st.DataObject) -> None:
    old = data.draw(st.integers(1, len(leaves)))
    proof = merkle.consistency_proof(leaves, old)
    old_root, new_root = merkle.root(leaves[:old]), merkle.root(leaves)
    assert merkle.verify_consistency(old, old_root, len(leaves), new_root, proof)
    bit = data.draw(st.integers(0, 255))
    assert not merkle.verify_consistency(old, _flip([old_root], 0, bit)[0], len(leaves),
                                         new_root, proof)
    assert not merkle.verify_consistency(old, old_root, len(leaves),
                                         _flip([new_root], 0, bit)[0], proof)
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        assert not merkle.verify_consistency(old, old_root, len(leaves), new_root,
                                             _flip(proof, which, bit))
