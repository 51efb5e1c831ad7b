from rai.client.cli import main

main()
