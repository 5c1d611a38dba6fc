"""The embedded knowledge index at the sizes a team's folder reaches: loading it into an instance and
answering one question's search, against the floor of one plain pass over the same vectors."""

from __future__ import annotations

import array
import gc
import math
import random
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench.stats import Section, median
from shared.reply.knowledge.chunking import Chunk
from shared.reply.knowledge.index import Index, load, save
from shared.reply.knowledge.retrieve import rank

DIMS = 1536  # text-embedding-3-small, DashScope text-embedding-v3 at its default size


def unit(rng: random.Random) -> array.array:
    values = [rng.gauss(0, 1) for _ in range(DIMS)]
    norm = math.sqrt(sum(v * v for v in values))
    return array.array("f", (v / norm for v in values))


def build(folder: Path, chunks: int) -> None:
    rng = random.Random(chunks)
    index = Index(model="bench")
    for i in range(chunks):
        index.chunks.append(Chunk(f"doc{i // 20}.pdf", i % 20 + 1, "", f"第{i}段 产品 X{i} 说明 " + "内容" * 250))
        index.vectors.append(unit(rng))
    index.files = {f"doc{d}.pdf": {"size": 1, "mtime": 1, "sha": "x", "chunks": 20} for d in range(chunks // 20)}
    save(folder, index)


def run(section: Section, quick: bool) -> None:
    sizes = (1000, 3000) if quick else (1000, 5000, 10000)
    for chunks in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-kb-") as state:
            folder = Path(state)
            build(folder, chunks)
            loads, reads, queries, floors = [], [], [], []
            query = unit(random.Random(1)).tolist()
            for _ in range(3 if quick else 5):
                started = time.perf_counter()
                for path in (folder / ".index").iterdir():
                    path.read_bytes()
                reads.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                index = load(folder)
                loads.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                rank(index, query, "产品 X42 的说明是什么", 4, 0.3)
                queries.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                for vector in index.vectors:
                    sum(vector)
                floors.append((time.perf_counter() - started) * 1000)
            section.add(f"{chunks:,} chunks (~{chunks // 2:,} pages): load the index vs read its files", median(loads),
                        median(reads), "ms")
            if chunks == sizes[-1]:
                del index
                gc.collect()
                tracemalloc.start()
                index = load(folder)
                held = tracemalloc.get_traced_memory()[0] / chunks * 1000 / 2**20
                tracemalloc.stop()
                section.add("memory an instance holds per 1,000 chunks, vs their float32 vectors alone", held,
                            1000 * DIMS * 4 / 2**20, "MB")
                load_ms = median(loads)
            search = median(queries)
            section.add(f"{chunks:,} chunks: search for one question vs one plain pass over the vectors",
                        search, median(floors), "ms", **({"target": "≤ 25 ms", "met": search <= 25}
                                                         if chunks == 10000 else {}))
    per_chunk_ms, per_chunk_mb = load_ms / sizes[-1], held / 1000
    section.notes.append(
        f"Where the embedded index stops making sense: extrapolated from {sizes[-1]:,} chunks, a cold instance spends "
        f"a second loading it at about {1000 / per_chunk_ms:,.0f} chunks and holds 512 MB (half of a 1 GB "
        f"instance) at about {512 / per_chunk_mb:,.0f}; a search stays near the milliseconds above well past that. "
        "Beyond those sizes, KB_BACKEND=dashvector keeps the index in a DashVector collection: an instance holds "
        "none, and a question costs one query round trip besides its embedding.")
    section.notes.append("Vectors are float32 rows of 1,536 dimensions, searched in pure Python (the reply package "
                         "carries no NumPy): one pass of XOR and bit counts over each vector's sign code picks about "
                         "a hundred candidates, and only those get the exact dot product, so a search costs less "
                         "than reading every vector once. Loading makes the codes and the lower-cased bodies once "
                         "per index. The baseline columns are the floors: reading the index files' bytes, and "
                         "reading every vector once. A question also costs one embeddings call, which the network "
                         "dominates.")
