from kaggle_kit.cli import main

main()
