from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="tinyresnet",
    version="0.1.0",
    description="A from-scratch deep-learning engine on NumPy and CuPy, built to teach residual networks",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["tinyresnet", "tinyresnet.*"]),
    include_package_data=True,
    package_data={"tinyresnet": ["data/*.csv.gz", "data/*.npz", "data/README.md", "assignment/*.md"]},
    install_requires=["numpy>=1.23", "matplotlib>=3.5", "tqdm>=4.60", "pillow>=9.0", "threadpoolctl>=3.1"],
    extras_require={
        # CuPy for CUDA 12.x with its CUDA libraries from PyPI ([ctk]): runs on drivers that report
        # CUDA 12.x or 13.x, no CUDA toolkit needed. Why this wheel: docs/gpu.md.
        "gpu": ["cupy-cuda12x[ctk]>=14.0"],
        # ONNX export (tinyresnet.onnx, `tinyresnet export`); onnxruntime checks the exported graph
        "onnx": ["onnx>=1.14", "onnxruntime>=1.16"],
        # the tutorials as notebooks and the course site (python -m tinyresnet.course.site build)
        "course": ["jupytext>=1.14", "nbclient>=0.7", "nbconvert>=7", "ipykernel>=6", "selenium>=4.10"],
        "test": ["pytest>=7", "hypothesis>=6", "ruff>=0.5", "jupytext>=1.14", "onnx>=1.14", "onnxruntime>=1.16",
                 "nbclient>=0.7", "nbconvert>=7", "ipykernel>=6", "selenium>=4.10"],
        "torch": ["torch==2.13.0"],
    },
    entry_points={"console_scripts": ["tinyresnet=tinyresnet.cli:main"]},
)
