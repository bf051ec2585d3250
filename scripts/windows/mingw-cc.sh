#!/bin/sh
# The C compiler for x86_64-pc-windows-gnu that scripts/windows-check gives build scripts
# (CC_x86_64_pc_windows_gnu): mingw-w64's gcc, with one exception.
#
# dokan-sys (for the Dokan backend, once it is added) compiles src/generate_version.c into
# generate_version.exe and then *runs* it on the build machine to learn Dokan's version
# constants; a Windows .exe cannot run on Linux. For that one call the .exe is still
# compiled (which proves the headers build) and then replaced with a shell script that
# writes the same two files, the values taken from Dokan's headers by the preprocessor.
# This follows dokan-sys 0.3.1's build script; recheck it when dokan-sys changes.
CC=x86_64-w64-mingw32-gcc
case " $* " in
*" src/generate_version.c "*) ;;
*) exec "$CC" "$@" ;;
esac
out=
for a in "$@"; do case $a in -o*) out=${a#-o} ;; esac; done
[ -n "$out" ] || { echo "mingw-cc.sh: no -o for generate_version" >&2; exit 1; }
"$CC" "$@" || exit $?
mv "$out" "$out.pe"
line=$(printf '#include "dokan.h"\n@@DOKAN_VERSION|DOKAN_MINIMUM_COMPATIBLE_VERSION|DOKAN_DRIVER_NAME|DOKAN_NP_NAME|DOKAN_MAJOR_API_VERSION\n' |
  "$CC" -E -P -Isrc/dokany/dokan -Isrc/dokany/sys -x c - | grep '^@@' | sed 's/^@@//') || exit 1
# wide string literals L"a" L"b" -> ab
field() { echo "$line" | cut -d'|' -f"$1" | sed 's/L"\([^"]*\)"/\1/g; s/[ "]//g'; }
ver=$(field 1); minver=$(field 2); drv=$(field 3); np=$(field 4); api=$(field 5)
case $ver in ''|*[!0-9]*) echo "mingw-cc.sh: bad DOKAN_VERSION '$ver'" >&2; exit 1 ;; esac
cat > "$out" <<SCRIPT
#!/bin/sh
cat > version.rs <<'RS'
pub const DOKAN_VERSION: u32 = $ver;
pub const DOKAN_MINIMUM_COMPATIBLE_VERSION: u32 = $minver;
pub const DOKAN_DRIVER_NAME: &str = "$drv";
pub const DOKAN_NP_NAME: &str = "$np";
pub const DOKAN_MAJOR_API_VERSION: &str = "$api";
RS
printf '%s' '$ver' > version.txt
SCRIPT
chmod +x "$out"
