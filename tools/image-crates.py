#!/usr/bin/env python3
"""Lists the crates tools/build-images.sh builds as domain images.

    python3 tools/image-crates.py ROOT METADATA_JSON

Reads `cargo metadata --no-deps` and prints one line per image: its name
(the crate's binary target), its directory (relative to ROOT) and its
package. A crate qualifies if its `Cargo.toml` sits directly in a folder
of `domains/`, `drivers/` or `rv6/` and it has a binary target. Anything that
cannot work as an image is an error that says what is expected, instead
of a build failure further on: a folder with sources but no `Cargo.toml`,
a binary target without the `image` feature it must require, more than
one binary, an image name the kernel refuses, two images of one name.
"""

import json
import os
import re
import sys

GUIDE = "see docs/authoring-domains.md, or start from `make new-domain NAME=x`"


def main():
    root, metadata = os.path.abspath(sys.argv[1]), sys.argv[2]
    with open(metadata) as f:
        packages = json.load(f)["packages"]
    by_dir = {}
    for package in packages:
        directory = os.path.relpath(os.path.dirname(package["manifest_path"]), root)
        by_dir[directory] = package
    errors, images, seen = [], [], {}
    for top in ("domains", "drivers", "rv6"):
        base = os.path.join(root, top)
        for entry in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            directory = f"{top}/{entry}"
            path = os.path.join(root, directory)
            if not os.path.isdir(path) or entry == "sdk":
                continue
            package = by_dir.get(directory)
            if package is None:
                if os.path.exists(os.path.join(path, "Cargo.toml")):
                    errors.append(f"{directory}: its Cargo.toml is not in the workspace "
                                  "(the root Cargo.toml's members must include domains/* and drivers/*)")
                elif os.path.isdir(os.path.join(path, "src")):
                    errors.append(f"{directory}: has src/ but no Cargo.toml; {GUIDE}")
                continue
            bins = [t for t in package["targets"] if "bin" in t["kind"]]
            if not bins:
                continue  # a library other domains' crates could not use anyway: not an image
            name = package["name"]
            if len(bins) > 1:
                errors.append(f"{directory} ({name}): {len(bins)} binary targets "
                              f"({', '.join(b['name'] for b in bins)}); an image crate has exactly one")
                continue
            image = bins[0]["name"]
            if "image" not in package.get("features", {}):
                errors.append(f"{directory} ({name}): no `image` feature; an image crate declares "
                              "`[features] image = []` and its [[bin]] `required-features = [\"image\"]` "
                              f"(so that host builds skip the binary); {GUIDE}")
                continue
            if bins[0].get("required-features") != ["image"]:
                errors.append(f"{directory} ({name}): its [[bin]] '{image}' must say "
                              f"`required-features = [\"image\"]`; {GUIDE}")
                continue
            if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", image):
                errors.append(f"{directory} ({name}): image name '{image}' (the [[bin]] name) must be "
                              "1-32 of [a-z0-9_-] starting with a letter")
                continue
            if image in seen:
                errors.append(f"{directory} ({name}): image name '{image}' is also {seen[image]}'s")
                continue
            seen[image] = directory
            images.append((image, directory, name))
    if errors:
        for error in errors:
            print(f"build-images: {error}", file=sys.stderr)
        sys.exit(1)
    for image, directory, name in images:
        print(image, directory, name)


if __name__ == "__main__":
    main()
