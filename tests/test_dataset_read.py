"""Reading a user's data set (hpo.tasks.dataset.read) and splitting it (.split): each format
written in its real encoding (PNG and JPEG through Pillow, CSV and Parquet through pandas, .npz
through NumPy) and read back; the decoded images' cache; and every bad input a one-line
UserError that names the problem."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hpo.tasks.dataset import images
from hpo.tasks.dataset.read import detect, read
from hpo.tasks.dataset.split import make_split, scaled, standardise
from hpo.util.errors import UserError
from hpo.util.paths import cache_dir

RNG = np.random.default_rng(0)


def pixels(h: int = 8, w: int = 8, channels: int = 3) -> np.ndarray:
    shape = (h, w, channels) if channels > 1 else (h, w)
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def image_folder(root: Path, counts: dict[str, int], size: tuple[int, int] = (8, 8),
                 ext: str = "png") -> dict[str, np.ndarray]:  # fmt: skip
    """A folder per class of random images; {relative path: the pixels written}."""
    written = {}
    for klass, n in counts.items():
        (root / klass).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = pixels(size[1], size[0])
            Image.fromarray(a).save(root / klass / f"{i}.{ext}")
            written[f"{klass}/{i}.{ext}"] = a
    return written


def fails(*words: str):
    """pytest.raises(UserError) whose one-line message holds every one of `words`."""

    class Check:
        def __enter__(self):
            self.raises = pytest.raises(UserError)
            self.info = self.raises.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.raises.__exit__(*exc)
            message = str(self.info.value)
            assert "\n" not in message, message
            for word in words:
                assert word in message, f"{word!r} not in {message!r}"
            return handled

    return Check()


# --- image folders -------------------------------------------------------------------------------


def test_a_folder_per_class_of_pngs_reads_back_pixel_for_pixel(tmp_path):
    written = image_folder(tmp_path / "pets", {"dog": 3, "cat": 4})
    found = read(tmp_path / "pets")
    assert (found.format, found.kind, found.classes) == ("image folder", "classification",
                                                         ("cat", "dog"))  # fmt: skip
    assert found.x.dtype == np.uint8 and found.x.shape == (7, 3, 8, 8) and found.images
    assert found.y.dtype == np.int64 and found.y.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert found.split is None and found.image_size == 8 and found.notes == ()
    assert np.array_equal(found.x[4], written["dog/0.png"].transpose(2, 0, 1))
    assert found.decode["images"] == 7 and found.decode["cached"] == 0
    assert found.path == (tmp_path / "pets").resolve() and len(found.digest) == 64
    assert detect(tmp_path / "pets") == "image folder"


def test_jpeg_any_case_of_suffix_and_hidden_files_left_out(tmp_path):
    image_folder(tmp_path / "d", {"a": 2, "b": 2}, ext="jpg")
    Image.fromarray(pixels()).save(tmp_path / "d" / "a" / "UP.JPEG")
    Image.fromarray(pixels()).save(tmp_path / "d" / "a" / ".hidden.png")
    (tmp_path / "d" / ".cache" / "x").mkdir(parents=True)  # a hidden class folder
    Image.fromarray(pixels()).save(tmp_path / "d" / ".cache" / "x" / "1.png")
    (tmp_path / "d" / "b" / "notes.txt").write_text("not an image")
    found = read(tmp_path / "d")
    assert found.classes == ("a", "b") and len(found.y) == 5


def test_every_mode_becomes_rgb_and_is_counted(tmp_path):
    root = tmp_path / "modes"
    image_folder(root, {"a": 2, "b": 2})
    gray = pixels(channels=1)
    Image.fromarray(gray, "L").save(root / "a" / "gray.png")
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(root / "a" / "deep.png")  # I;16
    Image.fromarray(pixels(channels=4), "RGBA").save(root / "b" / "rgba.png")
    Image.fromarray(pixels()).convert("P").save(root / "b" / "palette.png")
    Image.fromarray(pixels()).convert("CMYK").save(root / "b" / "cmyk.jpg")
    found = read(root)
    assert found.notes == ("2 grayscale, 1 CMYK, 1 palette, 1 RGBA images converted to RGB",)
    names = ["a/0", "a/1", "a/deep", "a/gray", "b/0", "b/1", "b/cmyk", "b/palette", "b/rgba"]
    x = dict(zip(names, found.x, strict=True))  # rows in sorted path order
    assert all(np.array_equal(x["a/gray"][c], gray) for c in range(3))
    assert (x["a/deep"] == 255).all()  # 16-bit white scaled to 8-bit white, not clipped


def test_mixed_sizes_are_resized_to_the_median_or_as_asked(tmp_path):
    root = tmp_path / "mixed"
    for i, (w, h) in enumerate([(12, 12), (16, 16), (40, 30), (16, 20)]):
        (root / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels(h, w)).save(root / "ab"[i % 2] / f"{i}.png")
    found = read(root)
    assert found.x.shape == (4, 3, 18, 18) and found.image_size == 18
    assert found.notes == ("mixed sizes 12x12..40x30: resized to 18x18 (the median size; "
                           "--data image_size=N sets it)",)  # fmt: skip
    capped = read(root, max_image_size=14)
    assert (
        capped.image_size == 14 and "the median size 18 capped at 14 on a CPU" in capped.notes[0]
    )
    asked = read(root, image_size=10, max_image_size=14)
    assert asked.x.shape[2:] == (10, 10) and "resized to 10x10 (image_size)" in asked.notes[0]


def test_same_size_images_stay_unless_not_square_or_over_the_cap(tmp_path):
    image_folder(tmp_path / "wide", {"a": 2, "b": 2}, size=(12, 6))
    wide = read(tmp_path / "wide")
    assert wide.x.shape[1:] == (3, 12, 12) and wide.notes[0].startswith("all 12x6: resized to")
    image_folder(tmp_path / "big", {"a": 2, "b": 2}, size=(16, 16))
    assert read(tmp_path / "big", max_image_size=16).notes == ()
    big = read(tmp_path / "big", max_image_size=8)
    assert big.image_size == 8 and "capped at 8 on a CPU" in big.notes[0]


def test_train_val_test_folders_are_the_users_split_and_classes_their_union(tmp_path):
    image_folder(tmp_path / "s" / "train", {"a": 3, "b": 3, "c": 2})
    image_folder(tmp_path / "s" / "val", {"a": 1, "b": 1})
    image_folder(tmp_path / "s" / "test", {"a": 1, "c": 1})
    found = read(tmp_path / "s")
    assert found.classes == ("a", "b", "c")
    assert sorted(found.split.tolist()) == ["test"] * 2 + ["train"] * 8 + ["val"] * 2
    splits = make_split(found)
    assert splits.how == "your own train/val/test split"
    assert (found.split[splits.train] == "train").all() and len(splits.test) == 2


def test_labels_csv_of_classes_with_its_own_split(tmp_path):
    root = tmp_path / "l"
    written = image_folder(root / "img", {"x": 6})
    files = sorted(written)
    labels = ["dog", "cat", "dog", "cat", "dog", "cat"]
    pd.DataFrame({"file": ["./img/" + f for f in files], "label": labels,
                  "split": ["train", "train", "train", "Train", "valid", "test"]}
                 ).to_csv(root / "labels.csv", index=False)  # fmt: skip
    found = read(root)
    assert (found.format, found.kind, found.classes) == ("image labels", "classification",
                                                         ("cat", "dog"))  # fmt: skip
    assert found.y.tolist() == [1, 0, 1, 0, 1, 0] and found.targets == ("label",)
    assert found.split.tolist() == ["train"] * 4 + ["val", "test"]
    assert np.array_equal(found.x[2], written[files[2]].transpose(2, 0, 1))
    assert read(root / "labels.csv").digest == found.digest  # the table itself: its folder


def test_labels_csv_of_numbers_is_regression_unless_few_integers(tmp_path):
    root = tmp_path / "r"
    written = image_folder(root, {"i": 12})
    table = pd.DataFrame({"file": sorted(written), "w": RNG.random(12), "h": RNG.random(12),
                          "stars": [1, 2, 3] * 4})  # fmt: skip
    table.to_csv(root / "labels.csv", index=False)
    both = read(root, target=["w", "h"])
    assert both.kind == "regression" and both.y.dtype == np.float32 and both.y.shape == (12, 2)
    assert both.targets == ("w", "h") and np.allclose(both.y[:, 1], table["h"])
    assert read(root, target="w,h").targets == ("w", "h")
    stars = read(root, target="stars")
    assert stars.kind == "classification" and stars.classes == ("1", "2", "3")
    assert "3 integer values read as classes" in stars.notes[0]
    assert read(root, target="stars", kind="regression").y.shape == (12, 1)


# --- the decoded images' cache -----------------------------------------------------------------


def test_a_second_read_loads_the_cache_and_a_copy_digests_the_same(tmp_path):
    image_folder(tmp_path / "one", {"a": 3, "b": 3})
    first = read(tmp_path / "one")
    again = read(tmp_path / "one")
    assert again.decode["cached"] == 1 and np.array_equal(first.x, again.x)
    assert len(list((cache_dir() / "decoded").glob("*.npz"))) == 1
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    copy = read(tmp_path / "two")
    assert copy.digest == first.digest and copy.decode["cached"] == 1
    assert read(tmp_path / "one", image_size=4).decode["cached"] == 0  # another size
    Image.fromarray(pixels()).save(tmp_path / "two" / "a" / "0.png")
    changed = read(tmp_path / "two")
    assert changed.digest != first.digest and changed.decode["cached"] == 0


def test_two_readers_at_once_decode_once(tmp_path, monkeypatch):
    import threading
    import time

    from hpo.tasks.dataset import read as reader

    image_folder(tmp_path / "d", {"a": 2, "b": 2})
    calls = []

    def slow(*args, **kw):
        calls.append(1)
        time.sleep(0.3)  # long enough for the other reader to find the lock taken
        return images.decode_files(*args, **kw)

    monkeypatch.setattr(reader, "decode_files", slow)
    found = []
    threads = [threading.Thread(target=lambda: found.append(read(tmp_path / "d"))) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and sorted(f.decode["cached"] for f in found) == [0, 1]


def test_many_files_decode_on_worker_processes_alike(tmp_path, monkeypatch):
    image_folder(tmp_path / "many", {"a": 20, "b": 20})
    here = read(tmp_path / "many")
    monkeypatch.setattr(images, "POOL_FROM", 1)
    files = [f"{k}/{i}.png" for k in "ab" for i in range(20)]
    pooled = images.decode_files(tmp_path / "many", sorted(files), image_size=None,
                                 max_image_size=None, skip_bad=False, processes=2)  # fmt: skip
    assert np.array_equal(pooled.x, here.x) and pooled.kept.tolist() == list(range(40))


def test_unreadable_images_stop_the_read_or_are_skipped(tmp_path):
    image_folder(tmp_path / "bad", {"a": 3, "b": 3})
    (tmp_path / "bad" / "a" / "junk.png").write_bytes(b"not a png at all")
    data = (tmp_path / "bad" / "b" / "0.png").read_bytes()
    (tmp_path / "bad" / "b" / "cut.png").write_bytes(data[: len(data) // 2])  # header intact
    with fails("a/junk.png", "--skip-bad"):
        read(tmp_path / "bad")
    (tmp_path / "bad" / "a" / "junk.png").unlink()
    with fails("b/cut.png", "--skip-bad"):
        read(tmp_path / "bad")
    (tmp_path / "bad" / "a" / "junk.png").write_bytes(b"not a png at all")
    found = read(tmp_path / "bad", skip_bad=True)
    assert found.skipped == ("a/junk.png", "b/cut.png") and len(found.y) == 6
    assert "2 unreadable images skipped (--skip-bad)" in found.notes
    assert read(tmp_path / "bad", skip_bad=True).decode["cached"] == 1


# --- tables and arrays ---------------------------------------------------------------------------


def a_table(n: int = 40) -> pd.DataFrame:
    frame = pd.DataFrame({
        "age": RNG.normal(40, 10, n), "colour": RNG.choice(["red", "blue"], n),
        "name": [f"n{i}" for i in range(n)], "price": RNG.random(n), "tax": RNG.random(n),
        "kind": RNG.choice(["good", "bad"], n),
    })  # fmt: skip
    frame.loc[[1, 5], "age"] = np.nan
    return frame


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_table_one_hot_encodes_text_and_fills_missing_numbers(tmp_path, suffix):
    frame, path = a_table(), tmp_path / f"t{suffix}"
    frame.to_csv(path) if suffix == ".csv" else frame.to_parquet(path)  # the CSV with its index
    found = read(path, target=["kind"])
    assert (found.format, found.kind, found.classes) == ("table", "classification",
                                                         ("bad", "good"))  # fmt: skip
    assert found.features == ("age", "colour=blue", "colour=red", "price", "tax")
    assert found.x.dtype == np.float32 and found.x.shape == (40, 5)
    assert found.x[1, 0] == pytest.approx(frame["age"].median())
    assert found.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert any("dropped Unnamed: 0 (the row numbers" in n for n in found.notes) or suffix != ".csv"
    assert any("name (40 distinct values" in n for n in found.notes)
    assert any("median (age: 2)" in n for n in found.notes)
    several = read(path, target=["price", "tax"])
    assert several.kind == "regression" and several.y.shape == (40, 2)
    assert several.targets == ("price", "tax") and "kind=bad" in several.features


def test_a_tables_split_column_is_its_own_split(tmp_path):
    frame = a_table().assign(split=["train"] * 30 + ["test"] * 10)
    frame.to_csv(tmp_path / "t.csv", index=False)
    found = read(tmp_path / "t.csv", target="price")
    assert "split" not in found.features and found.split.tolist()[-1] == "test"
    splits = make_split(found, seed=3)
    assert splits.how == ("your own train/test split; val carved as 10 % of your train "
                          "(seed 3)")  # fmt: skip
    assert (len(splits.train), len(splits.val), len(splits.test)) == (27, 3, 10)


def test_npz_images_in_each_layout(tmp_path):
    hwc = RNG.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "hwc.npz", x=hwc, y=np.array([0, 1, 2] * 4))
    found = read(tmp_path / "hwc.npz")
    assert found.format == "npz" and found.x.shape == (12, 3, 8, 8) and found.image_size == 8
    assert np.array_equal(found.x[0], hwc[0].transpose(2, 0, 1)) and found.classes == (
        "0",
        "1",
        "2",
    )
    assert found.notes[0] == "x read as N,H,W,C"
    np.savez(tmp_path / "chw.npz", x=hwc.transpose(0, 3, 1, 2), y=np.array(list("ab") * 6))
    chw = read(tmp_path / "chw.npz")
    assert np.array_equal(chw.x, found.x) and chw.notes[0] == "x read as N,C,H,W"
    assert chw.classes == ("a", "b") and chw.y.tolist()[:2] == [0, 1]
    np.savez(tmp_path / "gray.npz", x=hwc[..., 0], y=np.array([7, 3, 9] * 4))
    gray = read(tmp_path / "gray.npz", image_size=4)
    assert gray.x.shape == (12, 3, 4, 4) and gray.classes == ("3", "7", "9")
    assert gray.y.tolist()[:3] == [1, 0, 2]
    np.savez(
        tmp_path / "rgba.npz", x=np.concatenate([hwc, hwc[..., :1]], axis=3), y=hwc[:, 0, 0, 0] % 2
    )
    assert "alpha channel dropped" in read(tmp_path / "rgba.npz").notes


def test_npz_features_with_their_own_split(tmp_path):
    x = RNG.normal(size=(20, 3))
    np.savez(tmp_path / "f.npz", x=x, y=RNG.random(20), x_val=x[:4], y_val=RNG.random(4),
             x_test=x[:6], y_test=RNG.random(6))  # fmt: skip
    found = read(tmp_path / "f.npz")
    assert found.kind == "regression" and found.x.dtype == np.float32 and found.x.shape == (30, 3)
    assert found.y.shape == (30, 1) and found.y.dtype == np.float32 and found.targets == ("y",)
    assert found.split.tolist() == ["train"] * 20 + ["val"] * 4 + ["test"] * 6
    assert make_split(found).how == "your own train/val/test split"


# --- the split and the scaling -------------------------------------------------------------------


def test_the_seeded_split_is_80_10_10_stratified_and_repeatable(tmp_path):
    y = np.array([0] * 60 + [1] * 30 + [2] * 10)
    np.savez(tmp_path / "d.npz", x=RNG.normal(size=(100, 2)), y=y)
    found = read(tmp_path / "d.npz")
    splits = make_split(found, seed=1)
    assert splits.how == "seeded 80/10/10 split (seed 1), stratified by class"
    parts = (splits.train, splits.val, splits.test)
    assert [len(p) for p in parts] == [80, 10, 10] and all(p.dtype == np.int64 for p in parts)
    assert sorted(np.concatenate(parts).tolist()) == list(range(100))
    assert np.bincount(y[splits.val]).tolist() == [6, 3, 1]
    assert np.array_equal(make_split(found, seed=1).val, splits.val)
    assert not np.array_equal(make_split(found, seed=2).val, splits.val)


def test_standardise_learns_from_the_training_rows_only():
    train = np.array([[1.0, 5.0], [3.0, 5.0]], np.float32)
    mean, std = standardise(train)
    assert mean.tolist() == [2.0, 5.0] and std.tolist() == [1.0, 1.0]  # constant: std 1
    assert scaled(np.array([[4.0, 6.0]], np.float32), (mean, std)).tolist() == [[2.0, 1.0]]


# --- bad input -----------------------------------------------------------------------------------


def test_bad_paths_and_folders(tmp_path):
    with fails("no such file or folder", "nowhere"):
        read(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with fails("no images found", ".png, .jpg, .jpeg, .bmp, .webp"):
        read(tmp_path / "empty")
    (tmp_path / "data.txt").write_text("1,2")
    with fails("unknown format '.txt'", ".csv", ".parquet", ".npz"):
        read(tmp_path / "data.txt")
    image_folder(tmp_path / "loose" / "x", {"": 2})
    shutil.move(tmp_path / "loose" / "x" / "0.png", tmp_path / "loose" / "0.png")
    shutil.rmtree(tmp_path / "loose" / "x")
    with fails("no images found", "directly in", "a folder of its own"):
        read(tmp_path / "loose")


def test_too_few_classes_or_images(tmp_path):
    image_folder(tmp_path / "one", {"only": 3})
    with fails("at least 2 classes", "'only'"):
        read(tmp_path / "one")
    image_folder(tmp_path / "few", {"a": 3, "b": 1})
    with fails("class 'b'", "1 image:", "at least 2"):
        read(tmp_path / "few")
    image_folder(tmp_path / "mixed" / "train", {"a": 2, "b": 2})
    image_folder(tmp_path / "mixed" / "other", {"a": 2})
    with fails("train/ folder beside other folders (other)"):
        read(tmp_path / "mixed")
    with fails("regression", "labels.csv"):
        read(tmp_path / "few", kind="regression")


def test_bad_labels_tables(tmp_path):
    written = image_folder(tmp_path / "l", {"i": 4})
    labels = tmp_path / "l" / "labels.csv"
    pd.DataFrame({"path": sorted(written), "label": list("abab")}).to_csv(labels, index=False)
    with fails("no 'file' column", "columns: path, label"):
        read(tmp_path / "l")
    files = sorted(written) + ["i/gone.png", "i/lost.png"]
    pd.DataFrame({"file": files, "label": list("ababab")}).to_csv(labels, index=False)
    with fails("names 2 files that do not exist", "the first: i/gone.png"):
        read(tmp_path / "l")
    frame = pd.DataFrame({"file": sorted(written), "label": list("abab"), "split": "later"})
    frame.to_csv(labels, index=False)
    with fails("'later'", "train, val or test"):
        read(tmp_path / "l")
    frame.drop(columns="split").assign(w=[1.0, np.nan, np.inf, 2.0]).to_csv(labels, index=False)
    with fails("target 'w'", "in 2 of 4 rows"):
        read(tmp_path / "l", target="w")
    with fails("target 'z' is not a column of labels.csv", "columns: label, w"):
        read(tmp_path / "l", target="z")


def test_bad_tables(tmp_path):
    a_table().to_csv(tmp_path / "t.csv", index=False)
    with fails("a table needs --target COL (columns: age, colour, name, price, tax, kind)"):
        read(tmp_path / "t.csv")
    with fails("target 'cost' is not a column of t.csv", "columns: age, colour"):
        read(tmp_path / "t.csv", target="cost")
    with fails("target 'kind' of t.csv is not numeric", "regression"):
        read(tmp_path / "t.csv", target="kind", kind="regression")
    with fails("kind must be classification or regression"):
        read(tmp_path / "t.csv", target="kind", kind="ranking")
    pd.DataFrame({"id": [f"u{i}" for i in range(40)], "y": RNG.random(40)}).to_csv(
        tmp_path / "ids.csv", index=False
    )
    with fails(
        "no usable feature column", "dropped id (40 distinct values, over the 32 one-hot encoded)"
    ):
        read(tmp_path / "ids.csv", target="y")
    pd.DataFrame({"a": [1.0, 2.0, np.nan], "y": [np.nan, 1.0, np.nan]}).to_parquet(
        tmp_path / "n.parquet"
    )
    with fails("target 'y'", "NaN", "2 of 3 rows"):
        read(tmp_path / "n.parquet", target="y")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 nothing else")
    with fails("broken.parquet cannot be read as Parquet"):
        read(tmp_path / "broken.parquet", target="y")


def test_bad_arrays(tmp_path):
    x = RNG.normal(size=(10, 2))
    np.savez(tmp_path / "a.npz", features=x, labels=np.arange(10))
    with fails("needs arrays named x and y", "features, labels"):
        read(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", x=x, y=np.arange(9))
    with fails("x has 10 rows but y has 9"):
        read(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", x=x, y=np.arange(10), x_val=x)
    with fails("has x_val but no y_val"):
        read(tmp_path / "c.npz")
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(10), x_val=x, y_val=np.arange(3))
    with fails("x_val has 10 rows but y_val has 3"):
        read(tmp_path / "d.npz")
    np.savez(tmp_path / "e.npz", x=np.zeros((4, 3, 8, 8), np.float32), y=np.arange(4))
    with fails("float32 of shape (4, 3, 8, 8)", "uint8 images"):
        read(tmp_path / "e.npz")
    np.savez(tmp_path / "f.npz", x=x, y=np.array([{"a": 1}] * 10, dtype=object))
    with fails("Python objects"):
        read(tmp_path / "f.npz")
    np.savez(tmp_path / "g.npz", x=x, y=np.array([0.5, np.nan] * 5))
    with fails("target 'y'", "5 of 10 rows"):
        read(tmp_path / "g.npz")
    with fails("--target", "a table or labels.csv"):
        read(tmp_path / "g.npz", target="y")


def test_a_split_that_cannot_be_made(tmp_path):
    np.savez(tmp_path / "tiny.npz", x=RNG.normal(size=(8, 2)), y=RNG.random(8))
    with fails("8 rows are too few", "10 or more"):
        make_split(read(tmp_path / "tiny.npz"))
    np.savez(tmp_path / "notrain.npz", x=np.zeros((0, 2)), y=np.zeros(0),
             x_val=RNG.normal(size=(5, 2)), y_val=RNG.random(5))  # fmt: skip
    with fails("no train rows", "5 val"):
        make_split(read(tmp_path / "notrain.npz"))
    np.savez(tmp_path / "rare.npz", x=RNG.normal(size=(20, 2)), y=np.array([0, 1] * 9 + [2, 2]))
    found = read(tmp_path / "rare.npz")
    found.y[-1] = 1  # as if read so: class 2 with one example, which read itself refuses
    with fails("class '2' has 1 example", "at least 2 per class"):
        make_split(found)


def test_images_that_would_not_fit_in_memory_are_one_line_with_a_size_that_fits():
    images.check_fits(1_000, 64, available=10**9)  # 12 MB of 1 GB: fits
    with pytest.raises(UserError, match=r"--data image_size=(\d+) would fit") as error:
        images.check_fits(100_000, 224, available=8 * 2**30)  # 15 GB of uint8, 8 GB free
    fits = int(error.value.args[0].rsplit("image_size=", 1)[1].split()[0])
    images.check_fits(100_000, fits, available=8 * 2**30)  # the size it names does fit
    with pytest.raises(UserError):
        images.check_fits(100_000, fits + 2, available=8 * 2**30)
