"""Image and kernel files: what they mean is what a viewer shows, and anything else is one line naming
the file and what is allowed, never a traceback or a silent guess (issue 11). Tiny files in tmp_path."""
import pickle
import struct

import numpy as np
import pytest
from conftest import write_png
from PIL import Image, ImageFile
from scipy.io import savemat

from srlab.data import check_image, load_image
from srlab.degradation import load_kernel
from srlab.errors import DataError, UserError

# EXIF orientation -> the numpy turn that makes the stored pixels upright (EXIF 2.3, tag 0x0112).
UPRIGHT = {
    1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def blocks(h: int, w: int, size: int = 1) -> np.ndarray:
    """An ``(h*size, w*size, 3)`` image of distinct flat blocks: every turn or flip of it differs."""
    rng = np.random.default_rng(0)
    cells = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cells.repeat(size, axis=0).repeat(size, axis=1)


def with_orientation(path, array, orientation, **kw):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(array).save(path, exif=exif.tobytes(), **kw)
    return path


def one_line_error(kind, fn, path, *words):
    with pytest.raises(kind) as info:
        fn(path)
    message = str(info.value)
    assert "\n" not in message and path.name in message, message
    for word in words:
        assert word in message, message
    return message


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    stored = blocks(4, 6)
    path = with_orientation(tmp_path / "phone.png", stored, orientation)
    out = load_image(path)
    np.testing.assert_array_equal(out, UPRIGHT[orientation](stored))
    assert check_image(path) == (out.shape[1], out.shape[0])


@pytest.mark.parametrize("name, kw", [("phone.jpg", {"quality": 95, "subsampling": 0}),
                                      ("phone.webp", {"lossless": True}), ("phone.tif", {})])
def test_exif_orientation_in_other_formats(tmp_path, name, kw):
    """JPEG is where phones put it; TIFF, which Pillow turns by itself, must not be turned twice."""
    stored = blocks(2, 3, size=8)  # flat 8x8 blocks, no chroma subsampling: JPEG is within a few levels
    path = with_orientation(tmp_path / name, stored, 6, **kw)
    out = load_image(path)
    assert out.shape == (24, 16, 3)
    assert np.abs(out.astype(int) - np.rot90(stored, -1)).max() <= 8
    assert check_image(path) == (16, 24)


def test_float_images_in_0_1_are_scaled_and_in_0_255_are_kept(tmp_path):
    unit = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    Image.fromarray(unit).save(tmp_path / "unit.tif")
    out = load_image(tmp_path / "unit.tif")
    assert out.shape == (3, 4, 3)
    np.testing.assert_array_equal(out[..., 0], np.round(unit.astype(np.float64) * 255))
    Image.fromarray(unit * 200).save(tmp_path / "levels.tif")  # max 200 > 1: already 8-bit levels
    np.testing.assert_array_equal(load_image(tmp_path / "levels.tif")[..., 1], np.round(unit.astype(np.float64) * 200))


@pytest.mark.parametrize("value, found", [(np.nan, "NaN or inf"), (np.inf, "NaN or inf"),
                                          (-0.5, "values in [-0.5, 1]"), (300.0, "values in [0, 300]")])
def test_float_images_out_of_range_are_refused(tmp_path, value, found):
    values = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    values[1, 2] = value
    Image.fromarray(values).save(tmp_path / "depth.tif")
    one_line_error(DataError, load_image, tmp_path / "depth.tif", "float image", found, "allowed: [0, 1] or [0, 255]")


def test_32_bit_integer_images(tmp_path):
    levels = (np.arange(12, dtype=np.int32) * 20).reshape(3, 4)
    Image.fromarray(levels).save(tmp_path / "eight.tif")
    np.testing.assert_array_equal(load_image(tmp_path / "eight.tif")[..., 0], levels)
    Image.fromarray(levels * 257).save(tmp_path / "sixteen.tif")  # beyond 255: 16-bit levels, rescaled
    np.testing.assert_array_equal(load_image(tmp_path / "sixteen.tif")[..., 2], levels)
    for name, values, found in [("big.tif", levels * 10_000, "[0, 2200000]"), ("neg.tif", levels - 5, "[-5, 215]")]:
        Image.fromarray(values).save(tmp_path / name)
        one_line_error(DataError, load_image, tmp_path / name, "32-bit integer image", f"values in {found}",
                       "allowed: [0, 255] or [0, 65535]")


@pytest.mark.parametrize("name, kw", [("anim.gif", {}), ("anim.webp", {"lossless": True}), ("pages.tif", {}),
                                      ("anim.png", {})])
def test_multi_frame_files_are_refused(tmp_path, name, kw):
    first, second = (Image.fromarray(np.full((4, 6, 3), v, np.uint8)) for v in (0, 255))
    first.save(tmp_path / name, save_all=True, append_images=[second], **kw)
    for fn in (load_image, check_image):
        one_line_error(DataError, fn, tmp_path / name, "2 frames", "save the frame to use")


def test_a_tiff_with_a_corrupt_second_page_is_one_line(tmp_path):
    """Counting frames reads every page's header; Pillow raises TypeError for a page without a width."""
    first, second = (Image.fromarray(np.full((4, 6, 3), v, np.uint8)) for v in (0, 255))
    first.save(tmp_path / "pages.tif", save_all=True, append_images=[second])
    data = bytearray((tmp_path / "pages.tif").read_bytes())
    assert data[:2] == b"II"  # little-endian TIFF: IFD offsets, entry counts and 12-byte entries
    first_ifd = struct.unpack_from("<I", data, 4)[0]
    second_ifd = struct.unpack_from("<I", data, first_ifd + 2 + 12 * struct.unpack_from("<H", data, first_ifd)[0])[0]
    entries = [second_ifd + 2 + 12 * i for i in range(struct.unpack_from("<H", data, second_ifd)[0])]
    width = next(e for e in entries if struct.unpack_from("<H", data, e)[0] == 256)
    struct.pack_into("<H", data, width, 0x9999)  # page 2 loses its ImageWidth tag
    (tmp_path / "pages.tif").write_bytes(bytes(data))
    for fn in (load_image, check_image):
        one_line_error(DataError, fn, tmp_path / "pages.tif", "cannot read image", "corrupt")


def test_an_mpo_photo_is_its_primary_image(tmp_path):
    """Phones write JPEGs with previews or depth maps after the photo (MPO): frame 0 by spec, not ambiguous."""
    photo, preview = blocks(2, 3, size=8), np.zeros((8, 8, 3), np.uint8)
    Image.fromarray(photo).save(tmp_path / "phone.jpg", format="MPO", save_all=True,
                                append_images=[Image.fromarray(preview)], quality=95, subsampling=0)
    assert np.abs(load_image(tmp_path / "phone.jpg").astype(int) - photo).max() <= 8
    assert check_image(tmp_path / "phone.jpg") == (24, 16)


def test_check_image_reads_the_header_only(tmp_path, monkeypatch):
    png = with_orientation(tmp_path / "a.png", blocks(5, 7), 8)
    jpg = with_orientation(tmp_path / "b.jpg", blocks(5, 7), 6)
    Image.fromarray(blocks(5, 7)).save(tmp_path / "c.webp")

    def no_decoding(self):
        raise AssertionError("check_image decoded the pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert check_image(png) == (5, 7) and check_image(jpg) == (5, 7)  # turned, as load_image will
    assert check_image(tmp_path / "c.webp") == (7, 5)


def test_check_image_refuses_what_load_image_refuses(tmp_path):
    good = write_png(tmp_path / "good.png", blocks(40, 40))
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "header.png").write_bytes(good.read_bytes()[:20])  # cut inside the header
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:-30])  # header intact, pixels cut
    for name in ("text.png", "header.png", "cut.png"):
        for fn in (check_image, load_image):
            one_line_error(DataError, fn, tmp_path / name, "cannot read image")
    one_line_error(DataError, check_image, tmp_path / "missing.png", "file not found")
    assert check_image(good) == (40, 40)


def save_npy(path, array):
    np.save(path, array, allow_pickle=True)  # allowed when writing: the files are meant to be bad


def save_npz_as_npy(path):
    np.savez(path.with_suffix(".npz"), k=np.ones((3, 3)))
    path.write_bytes(path.with_suffix(".npz").read_bytes())


@pytest.mark.parametrize("name, write, words", [
    ("strings.mat", lambda p: savemat(p, {"s": "kernel", "cube": np.ones((3, 3, 3))}),
     ["no non-empty 2-D numeric array", "s (1,), cube (3, 3, 3)", "expected a .mat file holding a 2-D"]),
    ("text.mat", lambda p: p.write_text("kernel = ones(3)\n" * 20),
     ["cannot read a 2-D kernel", "expected a .mat file holding a 2-D"]),
    ("empty.npy", lambda p: save_npy(p, np.zeros(0)), ["must be a 2-D array", "got shape (0,)"]),
    ("cube.npy", lambda p: save_npy(p, np.ones((3, 3, 3))), ["must be a 2-D array", "got shape (3, 3, 3)"]),
    ("pickled.npy", lambda p: save_npy(p, np.array([{"k": 1}], dtype=object)),
     ["allow_pickle=False", "expected a .npy file holding a 2-D"]),
    ("complex.npy", lambda p: save_npy(p, np.ones((3, 3), complex)),
     ["complex128 values", "expected a .npy file holding a 2-D"]),
    ("archive.npy", save_npz_as_npy, [".npz archive", "expected a .npy file holding a 2-D"]),
])
def test_bad_kernel_files_are_one_line_errors(tmp_path, name, write, words):
    write(tmp_path / name)
    one_line_error(UserError, load_kernel, tmp_path / name, *words)


def test_a_mat_kernel_is_its_first_non_empty_2d_array(tmp_path):
    savemat(tmp_path / "k.mat", {"empty": np.zeros((0, 0)), "name": "blur", "k": np.ones((5, 5))})
    kernel = load_kernel(tmp_path / "k.mat")
    assert tuple(kernel.shape) == (5, 5) and kernel.sum().item() == pytest.approx(1.0)


def test_a_pickled_kernel_is_never_unpickled(tmp_path):
    flag = tmp_path / "ran"

    class Payload:  # unpickling it would create ``flag``
        def __reduce__(self):
            return (exec, (f"open({str(flag)!r}, 'w').close()",))

    (tmp_path / "evil.npy").write_bytes(pickle.dumps(Payload()))
    one_line_error(UserError, load_kernel, tmp_path / "evil.npy", "cannot read a 2-D kernel")
    assert not flag.exists()
