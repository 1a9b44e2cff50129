from lightning_app.cli import main

main()
