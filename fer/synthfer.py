"""SynthFER: a procedurally rendered, seeded, deterministic data set of 48x48 grayscale faces.

Each face is drawn from an identity (face shape, feature placement, skin/hair tone, resting expression)
and one of the 7 expressions, which moves facial geometry: brow height and angle, eye openness, mouth
curvature/width/opening, a one-sided lip raise and a nose wrinkle. The expression's intensity is
continuous, so weak expressions sit close to neutral (and to each other) and some faces are genuinely
ambiguous. Pose jitter, lighting gradients, blur, noise and partial occlusion make the pixels vary far
more than the expression does. Everything is rendered with vectorised numpy on a coordinate grid (soft
signed-distance masks), in fixed-size batches, so the bytes depend only on the seed and split sizes.

Every split draws its own identities (independent random streams), each identity shows all 7
expressions (classes balanced), and the order is shuffled.
"""

from __future__ import annotations

import numpy as np

from fer.classes import EMOTIONS, IMAGE_SIZE, NUM_CLASSES
from fer.data import FerData, Split

_Num = np.ndarray | float
_BATCH = 256  # rendering batch; fixed so that the output never depends on how the work is chunked

# Expression deltas from neutral at full intensity. Columns: brow height (+ up), brow tilt (+ inner end
# up), eye openness, mouth curvature (+ corners up), mouth width, mouth opening, lip raise (one-sided
# sneer), nose wrinkle.
_PARAMS = ("brow_h", "brow_tilt", "eye_open", "curve", "mouth_w", "mouth_open", "sneer", "wrinkle")
_DELTAS = np.array(
    [
        # brow_h tilt  eye   curve  width  open  sneer wrinkle
        [-0.70, -1.00, 0.10, -0.30, -0.35, 0.00, 0.00, 0.30],  # angry
        [-0.40, -0.30, -0.45, -0.45, -0.05, 0.15, 1.00, 1.00],  # disgust
        [0.55, 0.70, 0.70, -0.35, 0.35, 0.45, 0.00, 0.00],  # fear
        [0.10, 0.00, -0.30, 1.00, 0.35, 0.30, 0.00, 0.00],  # happy
        [-0.15, 0.90, -0.35, -0.85, -0.10, 0.00, 0.00, 0.00],  # sad
        [1.00, 0.10, 0.85, 0.00, -0.25, 1.00, 0.00, 0.00],  # surprise
        [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00],  # neutral
    ],
    dtype=np.float64,
)
if _DELTAS.shape != (NUM_CLASSES, len(_PARAMS)):
    raise RuntimeError('internal: expected _DELTAS.shape == (NUM_CLASSES, len(_PARAMS))')

# Difficulty knobs, tuned with the default config (bench.toml): dense VGG16-FER ~91% test accuracy
# (measured 91.4% on CPU), a width-0.5 model ~1 point lower; at intensity 0.30 it was ~89%.
_INTENSITY = (0.35, 1.0)  # expression intensity, uniform in this range (low = close to neutral)
_IDENTITY_SD = 0.15  # per-identity resting offsets of the expression parameters
_JITTER_SD = 0.10  # per-image expression noise
_OCCLUSION_P = 0.14  # probability of a random occluder over part of the face


def generate_synthfer(n_train: int, n_val: int, n_test: int, seed: int) -> FerData:
    """Render SynthFER with the given split sizes; the same arguments always give identical bytes."""
    for name, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if n < NUM_CLASSES:
            raise ValueError(f"{name} must be at least {NUM_CLASSES} (one image per class), got {n}")
    splits = [_render_split(n, seed, i) for i, n in enumerate((n_train, n_val, n_test))]
    return FerData(
        name="synthfer",
        train=splits[0],
        val=splits[1],
        test=splits[2],
        synthetic=True,
        notes={
            "generator": "fer.synthfer",
            "seed": str(seed),
            "classes": ",".join(EMOTIONS),
        },
    )


def _render_split(n: int, seed: int, split_index: int) -> Split:
    rng = np.random.default_rng(np.random.SeedSequence([seed, split_index, 0x5F3D]))
    p = _sample_params(n, rng)
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for start in range(0, n, _BATCH):
        sl = slice(start, min(n, start + _BATCH))
        batch = {k: v[sl] for k, v in p.items()}
        images[sl] = _render(batch, rng)
    return Split(images=images, labels=p["label"].astype(np.int64))


def _sample_params(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-image scene parameters: identity (shared by 7 images), expression, pose, photometry."""
    n_id = -(-n // NUM_CLASSES)
    # each identity shows each class once (classes balanced to within one image), in shuffled order
    ident = np.repeat(np.arange(n_id), NUM_CLASSES)[:n]
    labels = np.tile(np.arange(NUM_CLASSES), n_id)[:n]
    order = rng.permutation(n)
    labels, ident = labels[order], ident[order]

    def per_id(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, n_id)[ident]

    def per_img(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, n)

    intensity = per_img(*_INTENSITY)
    expr = _DELTAS[labels] * intensity[:, None]
    expr += rng.normal(0, _IDENTITY_SD, (n_id, len(_PARAMS)))[ident] * 0.5
    expr += rng.normal(0, _JITTER_SD, (n, len(_PARAMS)))
    expr[:, 6:] = np.abs(expr[:, 6:])  # sneer and wrinkle are one-sided
    p: dict[str, np.ndarray] = {name: expr[:, i] for i, name in enumerate(_PARAMS)}
    p["label"] = labels
    p["intensity"] = intensity
    # identity: face shape and feature placement
    p["face_a"] = per_id(13.5, 16.5)
    p["face_b"] = per_id(17.0, 20.0)
    p["eye_x"] = per_id(5.2, 7.2)
    p["eye_y"] = per_id(-5.0, -2.5)
    p["eye_w"] = per_id(2.4, 3.4)
    p["eye_h"] = per_id(1.2, 1.9)
    p["brow_gap"] = per_id(3.6, 5.0)
    p["brow_t"] = per_id(0.9, 1.5)
    p["mouth_y"] = per_id(7.5, 10.5)
    p["mouth_w0"] = per_id(5.0, 7.0)
    p["nose_y"] = per_id(2.5, 4.5)
    p["skin"] = per_id(0.40, 0.85)
    p["hair"] = per_id(0.05, 0.70)
    p["hairline"] = per_id(-15.0, -10.0)
    p["feature_dark"] = per_id(0.02, 0.22)
    p["sneer_side"] = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    # pose and photometry
    p["cx"] = 24.0 + per_img(-2.5, 2.5)
    p["cy"] = 24.5 + per_img(-2.5, 2.5)
    p["roll"] = np.deg2rad(per_img(-7.0, 7.0))
    p["scale"] = per_img(0.88, 1.12)
    p["yaw"] = per_img(-1.0, 1.0)
    p["bg"] = per_img(0.0, 1.0)
    p["bg_grad"] = per_img(-0.4, 0.4)
    p["light_x"] = per_img(-0.45, 0.45)
    p["light_y"] = per_img(-0.3, 0.3)
    p["contrast"] = per_img(0.85, 1.1)
    p["brightness"] = per_img(-0.12, 0.12)
    p["blur"] = per_img(0.0, 0.36)
    p["noise"] = per_img(0.003, 0.018)
    occ = rng.random(n) < _OCCLUSION_P
    p["occ"] = occ.astype(np.float64)
    p["occ_x"] = per_img(4.0, 44.0)
    p["occ_y"] = per_img(4.0, 44.0)
    p["occ_a"] = per_img(4.0, 9.0)
    p["occ_b"] = per_img(3.0, 7.0)
    p["occ_v"] = per_img(0.0, 1.0)
    return p


def _soft(d: np.ndarray, width: float = 0.6) -> np.ndarray:
    """Anti-aliased mask from a signed distance in pixels (negative inside)."""
    return np.clip(0.5 - d / width, 0.0, 1.0)


def _ellipse(x: np.ndarray, y: np.ndarray, cx: _Num, cy: _Num, a: _Num, b: _Num) -> np.ndarray:
    """Approximate signed distance (pixels) to an axis-aligned ellipse."""
    q = np.sqrt(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2)
    return (q - 1.0) * np.minimum(a, b)


def _segment(x: np.ndarray, y: np.ndarray, x0: _Num, y0: _Num, x1: _Num, y1: _Num) -> np.ndarray:
    """Distance from each point to the segment (x0, y0)-(x1, y1)."""
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy + 1e-9), 0.0, 1.0)
    return np.hypot(x - x0 - t * dx, y - y0 - t * dy)


def _blend(img: np.ndarray, mask: np.ndarray, value: np.ndarray | float) -> np.ndarray:
    return img + mask * (value - img)


def _render(p: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Render one batch of faces to uint8 [B, 48, 48]."""
    b = len(p["label"])

    def c(name: str) -> np.ndarray:
        return p[name].astype(np.float32)[:, None, None]

    grid = np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5
    u, v = grid[None, None, :], grid[None, :, None]
    # face-local coordinates (x right, y down), with roll, scale and translation
    cos, sin = np.cos(c("roll")), np.sin(c("roll"))
    du, dv = u - c("cx"), v - c("cy")
    x = (du * cos + dv * sin) / c("scale")
    y = (-du * sin + dv * cos) / c("scale")
    # yaw: features shift towards one side and the far half of the face narrows
    yaw = c("yaw")
    xf = x - yaw * 1.6

    # background with a gradient
    img = c("bg") + c("bg_grad") * (v - 24.0) / 48.0 + 0.0 * u
    # hair: a larger ellipse behind the face, then the face
    face_a = c("face_a") * (1.0 - 0.06 * yaw * np.sign(x))
    hair_d = _ellipse(x, y, 0.0, -2.0, face_a + 2.0, c("face_b") + 1.5)
    img = _blend(img, _soft(hair_d, 1.0), c("hair"))
    face_d = _ellipse(x, y, 0.0, 1.0, face_a, c("face_b"))
    face_m = _soft(face_d, 1.0)
    q = ((x / face_a) ** 2 + ((y - 1.0) / c("face_b")) ** 2).clip(0, 1)
    skin = c("skin") * (1.0 - 0.22 * q)
    img = _blend(img, face_m, skin)
    # fringe of hair above the hairline, inside the face
    fringe = _soft(y - (c("hairline") + 0.6 * np.sin(x * 0.5 + c("skin") * 9.0)), 1.0) * face_m
    img = _blend(img, fringe, c("hair"))

    dark = np.minimum(c("feature_dark"), c("skin") - 0.3)
    skin_c = c("skin")
    # eyes: light sclera, dark iris, eyelid line; openness scales the eye's height
    open_ = np.clip(1.0 + 1.0 * c("eye_open"), 0.25, 2.8)
    eh = c("eye_h") * open_
    ew = c("eye_w")
    ey = c("eye_y")
    for side in (-1.0, 1.0):
        ex = side * c("eye_x")
        eye_d = _ellipse(xf, y, ex, ey, ew, eh)
        sclera = _soft(eye_d, 0.8)
        img = _blend(img, sclera, np.minimum(skin_c + 0.25, 0.95))
        iris_r = np.minimum(1.5, eh * 1.1) + 0.2
        iris = _soft(np.hypot(xf - ex, y - ey) - iris_r, 0.8) * sclera
        img = _blend(img, iris, dark)
        lid = _soft(np.abs(eye_d) - 0.35, 0.8) * _soft(y - ey, 1.5)
        img = _blend(img, lid * 0.8, dark)
        # brow: a thick segment; height and inner-end tilt carry the expression
        base = ey - eh - c("brow_gap") * 0.6 - 2.8 * c("brow_h")
        tilt = c("brow_tilt")
        xi, xo = side * 1.6, side * (c("eye_x") + c("eye_w") + 1.0)
        yi, yo = base - 3.2 * tilt, base + 1.0 * tilt
        brow = _soft(_segment(xf, y, xi, yi, xo, yo) - c("brow_t"), 0.9)
        img = _blend(img, brow, dark + 0.1)

    # nose: a soft shadow line and nostrils; the wrinkle adds horizontal creases between the eyes
    ny = c("nose_y")
    nose = _soft(_segment(xf, y, 0.6, ey + 1.5, 1.2, ny) - 0.4, 1.2)
    img = _blend(img, nose * 0.35, dark)
    for side in (-1.0, 1.0):
        nostril = _soft(_ellipse(xf, y, side * 1.6, ny + 0.6, 1.0, 0.6), 0.8)
        img = _blend(img, nostril * 0.7, dark)
    wrinkle = np.clip(c("wrinkle"), 0.0, 1.5)
    for k in range(3):
        yy = ey + 0.2 + 1.3 * k
        line = _soft(_segment(xf, y, -2.2, yy, 2.2, yy - 0.3) - 0.3, 0.8)
        img = _blend(img, line * np.clip(wrinkle * 0.8, 0.0, 0.9), dark + 0.05)

    # mouth: a centre line bent by curvature, raised on one side by the sneer, opened by mouth_open
    mw = c("mouth_w0") * np.clip(1.0 + 0.35 * c("mouth_w"), 0.55, 1.6)
    my = c("mouth_y")
    xm = (xf / mw).clip(-1.2, 1.2)
    curve = c("curve")
    yc = my + 1.5 * curve - 4.4 * curve * xm**2 - 2.8 * c("sneer") * np.clip(c("sneer_side") * xm, 0, 1)
    opening = np.clip(c("mouth_open"), 0.0, 1.6) * 4.5 * np.sqrt(np.clip(1.0 - xm**2, 0.0, 1.0))
    top, bottom = yc - 0.35 * opening, yc + 0.65 * opening
    inside_x = np.abs(xf) - mw
    lips = np.maximum(np.maximum(top - 0.7 - y, y - bottom - 0.7), inside_x)
    img = _blend(img, _soft(lips, 0.9) * 0.85, dark + 0.08)
    cavity = np.maximum(np.maximum(top - y, y - bottom), inside_x + 0.8)
    img = _blend(img, _soft(cavity, 0.8) * np.clip(opening / 2.0, 0.0, 1.0), dark * 0.5)

    # occluder (hand, hair, object) over part of the image
    occ_d = _ellipse(u + 0.0 * v, v + 0.0 * u, c("occ_x"), c("occ_y"), c("occ_a"), c("occ_b"))
    img = _blend(img, _soft(occ_d, 1.0) * c("occ"), c("occ_v"))

    # lighting gradient across the face, contrast/brightness, blur, sensor noise
    light = 1.0 + c("light_x") * (u - 24.0) / 24.0 + c("light_y") * (v - 24.0) / 24.0
    img = img * light
    img = (img - 0.5) * c("contrast") + 0.5 + c("brightness")
    img = _blend(img, c("blur"), _box_blur(_box_blur(img)))
    img = img + rng.normal(0.0, 1.0, img.shape).astype(np.float32) * c("noise")
    out: np.ndarray = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    if out.shape != (b, IMAGE_SIZE, IMAGE_SIZE):
        raise RuntimeError('internal: expected out.shape == (b, IMAGE_SIZE, IMAGE_SIZE)')
    return out


def _box_blur(img: np.ndarray) -> np.ndarray:
    """3x3 box blur with edge replication on [B, H, W]."""
    p = np.pad(img, ((0, 0), (1, 1), (1, 1)), mode="edge")
    h = (p[:, :, :-2] + p[:, :, 1:-1] + p[:, :, 2:]) / 3.0
    return (h[:, :-2, :] + h[:, 1:-1, :] + h[:, 2:, :]) / 3.0
