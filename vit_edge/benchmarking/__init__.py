"""Host-side measurement: the sweep over artifacts, devices (local, SSH, adb), fleets and reports."""
