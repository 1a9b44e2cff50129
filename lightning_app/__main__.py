from lightning_app.command import main

main()
