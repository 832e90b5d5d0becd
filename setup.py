"""neon_ros: an ament_python ROS 2 package that is also pip-installable."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "neon_ros"

# Executables of DESIGN.md section 2 that exist (each issue adds its own).
CONSOLE_SCRIPTS = [
    "neon-ros = neon_ros.cli:main",
    "camera_buffer = neon_ros.nodes.camera_buffer:main",
    "speech_in = neon_ros.nodes.speech_in:main",
    "backbone = neon_ros.nodes.backbone:main",
    "action_head = neon_ros.nodes.action_head:main",
    "speech_out = neon_ros.nodes.speech_out:main",
    "g1_bridge = neon_ros.nodes.g1_bridge:main",
    "bridge_watchdog = neon_ros.nodes.bridge_watchdog:main",
    "body_bridge = neon_ros.nodes.body_bridge:main",
    "sim_g1 = neon_ros.nodes.sim_g1:main",
    "recorder = neon_ros.nodes.recorder:main",
]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
        (f"share/{PACKAGE}/config/backbones", glob("config/backbones/*.yaml")),
        (f"share/{PACKAGE}/config/soup", glob("config/soup/*.yaml")),
        (f"share/{PACKAGE}/models", glob("models/*.json") + glob("models/*.safetensors")),
    ],
    package_data={PACKAGE: ["py.typed"]},
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="Neon",
    maintainer_email="dev@neon.invalid",
    description="Neon: a frozen video foundation model + a tiny trained action head for the Unitree G1",
    license="MIT",
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
