"""Package set-up read from settings.ini (the nbdev 2 convention)."""
import re
from configparser import ConfigParser

import setuptools

config = ConfigParser(delimiters=["="])
config.read("settings.ini", encoding="utf-8")
cfg = config["DEFAULT"]

licenses = {"apache2": "Apache-2.0"}   # settings.ini's name -> the SPDX expression packaging tools read
def pypi_readme(text):
    "README.md with its links into the repository (`nbs/05_dataset.ipynb`) made absolute, so they work on PyPI too."
    return re.sub(r"\]\((?!https?://|#)([^)\s]+)\)", lambda m: f"]({cfg['git_url']}/blob/{cfg['branch']}/{m.group(1)})", text)

statuses = ["Planning", "Pre-Alpha", "Alpha", "Beta", "Production/Stable", "Mature", "Inactive"]

setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    description=cfg["description"],
    long_description=pypi_readme(open("README.md", encoding="utf-8").read()),
    long_description_content_type="text/markdown",
    author=cfg["author"],
    author_email=cfg["author_email"],
    license=licenses[cfg["license"]],
    url=cfg["git_url"],
    keywords=cfg["keywords"].split(),
    classifiers=[
        f"Development Status :: {cfg['status']} - {statuses[int(cfg['status'])]}",
        f"Intended Audience :: {cfg['audience']}",
        f"Natural Language :: {cfg['language']}",
        "Programming Language :: Python :: 3",
    ],
    packages=setuptools.find_packages(include=["llamass", "llamass.*"]),
    include_package_data=True,
    python_requires=f">={cfg['min_python']}",
    install_requires=cfg["requirements"].split(),
    extras_require={"dev": cfg["dev_requirements"].split(), "fast": cfg["fast_requirements"].split(),
                    "plots": cfg["plots_requirements"].split()},
    entry_points={
        "console_scripts": cfg["console_scripts"].split("\n"),
        "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"],
    },
    zip_safe=False,
)
