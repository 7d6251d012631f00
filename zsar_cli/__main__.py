from zsar_cli.cli.app import main

main()
