from micro.toolkit.cli import main

main()
