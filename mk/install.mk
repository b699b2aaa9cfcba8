# make install / uninstall (PREFIX, DESTDIR), and the layout kimifix finds
# its parts in (src/cli/cli_common.c, src/hooks/steer.c kf_find_cli):
#
#   $(BINDIR)/kimifix
#   $(LIBDIR)/libkimifix.so        where `LD_PRELOAD=libkimifix.so` finds it:
#                                  PREFIX/lib (the .deb: /usr/lib/MULTIARCH)
#   $(PKGLIBDIR)/kimifix-relay     private: only `kimifix relay` runs it
#   man pages, bash/zsh/fish completions
#
# LIBDIR must be PREFIX/lib or PREFIX/lib/MULTIARCH (kimifix looks for the
# library in ../lib and ../lib/MULTIARCH from its own directory). Without
# DESTDIR, scripts/ldconfig.sh refreshes the loader's cache when LIBDIR is
# on its search path (as root), or says what to do.
BINDIR      ?= $(PREFIX)/bin
LIBDIR      ?= $(PREFIX)/lib
PKGLIBDIR   ?= $(LIBDIR)/kimifix
MANDIR      ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d

$(B)/cli/cli_common.o: CFLAGS += -DKF_MULTIARCH='"$(MULTIARCH)"'

install: $(B)/libkimifix.so $(B)/kimifix $(B)/kimifix-relay
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGLIBDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(BASHCOMPDIR) \
	    $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 0755 $(B)/kimifix $(DESTDIR)$(BINDIR)/kimifix
	install -m 0644 $(B)/libkimifix.so $(DESTDIR)$(LIBDIR)/libkimifix.so
	install -m 0755 $(B)/kimifix-relay $(DESTDIR)$(PKGLIBDIR)/kimifix-relay
	rm -f $(DESTDIR)$(PKGLIBDIR)/libkimifix.so # an older install's (kimifix would prefer ours anyway)
	install -m 0644 man/kimifix.1 $(DESTDIR)$(MANDIR)/man1/kimifix.1
	install -m 0644 man/kimifix.rules.5 $(DESTDIR)$(MANDIR)/man5/kimifix.rules.5
	install -m 0644 completions/kimifix.bash $(DESTDIR)$(BASHCOMPDIR)/kimifix
	install -m 0644 completions/_kimifix $(DESTDIR)$(ZSHCOMPDIR)/_kimifix
	install -m 0644 completions/kimifix.fish $(DESTDIR)$(FISHCOMPDIR)/kimifix.fish
	@[ -n "$(DESTDIR)" ] || sh scripts/ldconfig.sh $(LIBDIR)

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/kimifix $(DESTDIR)$(LIBDIR)/libkimifix.so \
	    $(DESTDIR)$(PKGLIBDIR)/kimifix-relay $(DESTDIR)$(PKGLIBDIR)/libkimifix.so \
	    $(DESTDIR)$(MANDIR)/man1/kimifix.1 $(DESTDIR)$(MANDIR)/man5/kimifix.rules.5 \
	    $(DESTDIR)$(BASHCOMPDIR)/kimifix $(DESTDIR)$(ZSHCOMPDIR)/_kimifix \
	    $(DESTDIR)$(FISHCOMPDIR)/kimifix.fish
	-rmdir $(DESTDIR)$(PKGLIBDIR) 2>/dev/null
	@[ -n "$(DESTDIR)" ] || [ "$$(id -u)" != 0 ] || ldconfig
