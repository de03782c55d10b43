#!/usr/bin/env bash
# A bash trial: echoes what it received, reports the number of arguments as its loss.
echo "received $*" >&2
echo "loss=$#"
