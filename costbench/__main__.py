from costbench.cli import app

app()
