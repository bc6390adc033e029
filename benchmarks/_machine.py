"""What every benchmark table records about the machine it ran on."""

import platform


def cpu_model() -> str:
  """The CPU's model name with its family and model numbers (``/proc/cpuinfo``), else
  what ``platform`` knows. A VM often names only the vendor line ("AMD EPYC"), so the
  numbers tell its generations apart (AMD family 26 is Zen 5)."""
  fields = {}
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if not line.strip():
          break  # the first processor's block is enough
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
  except OSError:
    pass
  if "model name" not in fields:
    return platform.processor() or platform.machine()
  numbers = [f"{k} {fields[k]}" for k in ("cpu family", "model") if k in fields]
  return fields["model name"] + (f" ({', '.join(numbers).replace('cpu family', 'family')})"
                                 if numbers else "")
