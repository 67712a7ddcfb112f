// Package wget is the small HTTP client vpnfwd's image runs as /bin/wget:
// enough of GNU Wget's command line for the hooks gluetun's users write
// (gluetun's image ships GNU Wget; busybox's wget refuses options such as
// --retry-connrefused), with GNU Wget's exit codes. It fetches one or
// more URLs; it is not a mirroring tool.
package wget

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exit codes, as GNU Wget's.
const (
	ExitOK      = 0
	ExitGeneric = 1
	ExitParse   = 2 // a bad command line
	ExitFile    = 3 // the output file could not be written
	ExitNetwork = 4 // no connection, refused, timed out
	ExitTLS     = 5
	ExitServer  = 8 // the server answered with an error status
)

// Options is a parsed command line.
type Options struct {
	Output       string // -O: "" the URL's file name, "-" standard output
	Quiet        bool   // -q
	ShowHeaders  bool   // -S
	Method       string // --method; POST with --post-data
	Body         *string
	Headers      []string      // --header "Name: value"
	Timeout      time.Duration // -T: connect and read timeout (GNU: 900 s read)
	Tries        int           // -t: attempts in all (GNU's default 20; 0: unlimited)
	RetryRefused bool          // --retry-connrefused
	WaitRetry    time.Duration // --waitretry: the longest wait between tries (10 s)
	Insecure     bool          // --no-check-certificate
	URLs         []string
}

// errParse is a command-line error: exit code 2.
type errParse struct{ msg string }

func (e errParse) Error() string { return e.msg }

// Parse reads a GNU Wget command line (without the program name). Long
// options take their value as --opt=value or --opt value, short ones as
// -Ovalue or -O value, and short flags bundle (-qO-).
func Parse(args []string) (Options, error) {
	o := Options{Tries: 20, WaitRetry: 10 * time.Second, Timeout: 900 * time.Second}
	for i := 0; i < len(args); i++ {
		a := args[i]
		value := func(name string, inline *string) (string, error) {
			if inline != nil {
				return *inline, nil
			}
			if i+1 >= len(args) {
				return "", errParse{fmt.Sprintf("option '%s' requires an argument", name)}
			}
			i++
			return args[i], nil
		}
		switch {
		case a == "--":
			o.URLs = append(o.URLs, args[i+1:]...)
			i = len(args)
		case a == "-nv": // GNU Wget's one two-letter short option
			continue
		case strings.HasPrefix(a, "--"):
			name, v, has := strings.Cut(a, "=")
			var inline *string
			if has {
				inline = &v
			}
			if err := o.long(name, inline, value); err != nil {
				return o, err
			}
		case len(a) > 1 && a[0] == '-':
			if err := o.short(a[1:], value); err != nil {
				return o, err
			}
		default:
			o.URLs = append(o.URLs, a)
		}
	}
	if len(o.URLs) == 0 {
		return o, errParse{"missing URL"}
	}
	return o, nil
}

func (o *Options) long(name string, inline *string, value func(string, *string) (string, error)) error {
	flag := func() error {
		if inline != nil {
			return errParse{fmt.Sprintf("option '%s' doesn't allow an argument", name)}
		}
		return nil
	}
	var v string
	var err error
	switch name {
	case "--quiet":
		o.Quiet = true
		return flag()
	case "--server-response":
		o.ShowHeaders = true
		return flag()
	case "--retry-connrefused":
		o.RetryRefused = true
		return flag()
	case "--no-check-certificate":
		o.Insecure = true
		return flag()
	case "--no-verbose", "--verbose":
		return flag() // accepted; the messages are short already
	case "--output-document", "--post-data", "--body-data", "--header", "--method", "--timeout", "--tries", "--waitretry":
		if v, err = value(name, inline); err != nil {
			return err
		}
	default:
		return errParse{fmt.Sprintf("unrecognized option '%s'", name)}
	}
	switch name {
	case "--output-document":
		o.Output = v
	case "--post-data":
		o.Method, o.Body = "POST", &v
	case "--body-data":
		o.Body = &v
	case "--header":
		o.Headers = append(o.Headers, v)
	case "--method":
		o.Method = strings.ToUpper(v)
	case "--timeout", "--waitretry":
		d, err := seconds(name, v)
		if err != nil {
			return err
		}
		if name == "--timeout" {
			o.Timeout = d
		} else {
			o.WaitRetry = d
		}
	case "--tries":
		n, err := strconv.Atoi(v)
		if v == "inf" {
			n, err = 0, nil
		}
		if err != nil || n < 0 {
			return errParse{fmt.Sprintf("--tries: invalid number %q", v)}
		}
		o.Tries = n
	}
	return nil
}

// short reads a bundle of short options (after the dash).
func (o *Options) short(bundle string, value func(string, *string) (string, error)) error {
	long := map[byte]string{'O': "--output-document", 'T': "--timeout", 't': "--tries"}
	for j := 0; j < len(bundle); j++ {
		c := bundle[j]
		switch c {
		case 'q':
			o.Quiet = true
		case 'S':
			o.ShowHeaders = true
		case 'O', 'T', 't':
			var inline *string
			if rest := bundle[j+1:]; rest != "" {
				inline = &rest
			}
			v, err := value("-"+string(c), inline)
			if err != nil {
				return err
			}
			return o.long(long[c], &v, value)
		default:
			return errParse{fmt.Sprintf("invalid option -- '%c'", c)}
		}
	}
	return nil
}

func seconds(name, v string) (time.Duration, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return 0, errParse{fmt.Sprintf("%s: invalid time period %q", name, v)}
	}
	return time.Duration(f * float64(time.Second)), nil
}

// Main runs wget with args (without the program name), printing progress
// and errors to stderr as GNU Wget does (nothing with -q), and returns
// the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "wget: %v\nUsage: wget [OPTION]... [URL]...\n", err)
		return ExitParse
	}
	logw := stderr
	if o.Quiet {
		logw = io.Discard
	}
	code := ExitOK
	for _, u := range o.URLs {
		if c := o.fetch(ctx, u, stdout, logw); c != ExitOK {
			code = c // GNU Wget: the last error's code
		}
	}
	return code
}

// fetch gets one URL, trying again as GNU Wget does: after a network
// error (a refused connection only with --retry-connrefused), waiting
// 1 s, 2 s, ... up to --waitretry between tries.
func (o Options) fetch(ctx context.Context, rawURL string, stdout, logw io.Writer) int {
	if !strings.Contains(rawURL, "://") {
		rawURL = "http://" + rawURL
	}
	client := o.client()
	for try := 1; ; try++ {
		fmt.Fprintf(logw, "--%s--  %s\n", time.Now().Format("2006-01-02 15:04:05"), rawURL)
		code, retry := o.once(ctx, client, rawURL, stdout, logw)
		if !retry || (o.Tries != 0 && try >= o.Tries) {
			if retry {
				fmt.Fprintf(logw, "Giving up.\n\n")
			}
			return code
		}
		wait := min(time.Duration(try)*time.Second, o.WaitRetry)
		fmt.Fprintf(logw, "Retrying.\n\n")
		select {
		case <-ctx.Done():
			return code
		case <-time.After(wait):
		}
	}
}

func (o Options) client() *http.Client {
	dialer := &net.Dialer{Timeout: o.Timeout}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   o.Timeout,
		ResponseHeaderTimeout: o.Timeout,
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: o.Insecure}, // #nosec G402 -- only with --no-check-certificate
	}
	return &http.Client{Transport: tr}
}

// once makes one request; retry says whether another try may help.
func (o Options) once(ctx context.Context, client *http.Client, rawURL string, stdout, logw io.Writer) (code int, retry bool) {
	method := o.Method
	if method == "" {
		method = "GET"
	}
	var body io.Reader
	if o.Body != nil {
		body = strings.NewReader(*o.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		fmt.Fprintf(logw, "%s: %v\n", rawURL, err)
		return ExitParse, false
	}
	req.Header.Set("User-Agent", "Wget/1.21 (vpnfwd)")
	if o.Body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	// A --header replaces the default of the same name (as GNU Wget's
	// does); a name given twice is sent twice.
	given := map[string]bool{}
	for _, h := range o.Headers {
		name, v, ok := strings.Cut(h, ":")
		if !ok {
			fmt.Fprintf(logw, "wget: --header %q: want 'Name: value'\n", h)
			return ExitParse, false
		}
		name = http.CanonicalHeaderKey(strings.TrimSpace(name))
		if given[name] {
			req.Header.Add(name, strings.TrimSpace(v))
		} else {
			req.Header.Set(name, strings.TrimSpace(v))
		}
		given[name] = true
	}
	fmt.Fprintf(logw, "Connecting to %s... ", req.URL.Host)
	resp, err := client.Do(req)
	if err != nil {
		return o.networkError(err, logw)
	}
	defer resp.Body.Close()
	fmt.Fprintf(logw, "connected.\nHTTP request sent, awaiting response... %s\n", resp.Status)
	if o.ShowHeaders {
		fmt.Fprintf(logw, "  %s %s\n", resp.Proto, resp.Status)
		for k, vs := range resp.Header {
			for _, v := range vs {
				fmt.Fprintf(logw, "  %s: %s\n", k, v)
			}
		}
	}
	if resp.StatusCode >= 400 {
		fmt.Fprintf(logw, "%s ERROR %d: %s.\n\n", time.Now().Format("2006-01-02 15:04:05"), resp.StatusCode, http.StatusText(resp.StatusCode))
		return ExitServer, false
	}
	out, name, err := o.open(req.URL.Path, stdout)
	if err != nil {
		fmt.Fprintf(logw, "%v\n", err)
		return ExitFile, false
	}
	fmt.Fprintf(logw, "Saving to: '%s'\n", name)
	n, err := io.Copy(out, resp.Body)
	if c, ok := out.(io.Closer); ok && out != stdout {
		if cerr := c.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			fmt.Fprintf(logw, "Cannot write to '%s' (%v).\n", name, err)
			return ExitFile, false
		}
		fmt.Fprintf(logw, "Read error at byte %d (%v).", n, err)
		return ExitNetwork, true
	}
	fmt.Fprintf(logw, "\n'%s' saved [%d]\n\n", name, n)
	return ExitOK, false
}

// networkError reports a request that got no answer. A refused
// connection is final unless --retry-connrefused.
func (o Options) networkError(err error, logw io.Writer) (int, bool) {
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &certErr):
		fmt.Fprintf(logw, "failed: %v.\nTo connect insecurely, use '--no-check-certificate'.\n", certErr.Err)
		return ExitTLS, false
	case errors.Is(err, syscall.ECONNREFUSED):
		fmt.Fprintf(logw, "failed: Connection refused.\n")
		return ExitNetwork, o.RetryRefused
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(logw, "failed: %v.\n", err)
		return ExitNetwork, false
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		fmt.Fprintf(logw, "failed: Name or service not known.\nwget: unable to resolve host address '%s'\n", dnsErr.Name)
		return ExitNetwork, false
	}
	fmt.Fprintf(logw, "failed: %v.\n", err)
	return ExitNetwork, true
}

// open returns where the body goes: standard output for -O -, the -O
// file, or the URL's file name (index.html for a directory) in the
// working directory, with .1, .2, ... added rather than overwrite one,
// as GNU Wget does without -O.
func (o Options) open(urlPath string, stdout io.Writer) (io.Writer, string, error) {
	switch o.Output {
	case "-":
		return stdout, "STDOUT", nil
	case "":
		name := path.Base(urlPath)
		if name == "/" || name == "." || strings.HasSuffix(urlPath, "/") {
			name = "index.html"
		}
		for i := 0; ; i++ {
			try := name
			if i > 0 {
				try = fmt.Sprintf("%s.%d", name, i)
			}
			f, err := os.OpenFile(try, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if errors.Is(err, os.ErrExist) {
				continue
			}
			return f, try, err
		}
	default:
		f, err := os.Create(o.Output)
		return f, o.Output, err
	}
}
