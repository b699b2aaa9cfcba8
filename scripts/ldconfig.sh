#!/bin/sh
# ldconfig.sh LIBDIR: after `make install` (not for a staged DESTDIR),
# make the bare name in `LD_PRELOAD=libkimifix.so CMD` resolve: when
# LIBDIR is one of the directories the loader searches (ldconfig's list:
# /etc/ld.so.conf and its built-in directories) and we are root, rebuild
# the loader's cache; otherwise say what to do. Never fails the install.
libdir=$1
id=$(stat -L -c '%d:%i' "$libdir" 2>/dev/null) || exit 0
on_path=0
for d in $(ldconfig -v -N -X 2>/dev/null | sed -n 's|^\(/[^:]*\):.*|\1|p'); do
    [ "$(stat -L -c '%d:%i' "$d" 2>/dev/null)" = "$id" ] && on_path=1 && break
done
if [ "$on_path" = 0 ]; then
    echo "note: $libdir is not on the loader's search path: LD_PRELOAD=libkimifix.so needs the"
    echo "      full path $libdir/libkimifix.so there (kimifix CMD and kimifix shell use it anyway);"
    echo "      or add $libdir to a file in /etc/ld.so.conf.d/ and run ldconfig"
elif [ "$(id -u)" = 0 ]; then
    ldconfig && echo "ldconfig: LD_PRELOAD=libkimifix.so now finds $libdir/libkimifix.so"
else
    echo "note: run 'sudo ldconfig' so that LD_PRELOAD=libkimifix.so finds $libdir/libkimifix.so"
fi
exit 0
