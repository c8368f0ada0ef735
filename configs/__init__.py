"""The recipes, stage defaults and SLURM profiles (YAML). A package only so that setuptools
can ship this folder as ``pipeline.configs`` (setup.cfg ``package_dir``) and
``importlib.resources`` finds it in a wheel and in an editable install alike."""
