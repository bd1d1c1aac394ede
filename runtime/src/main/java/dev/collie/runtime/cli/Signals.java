package dev.collie.runtime.cli;

import sun.misc.Signal;

/**
 * SIGINT and SIGTERM during training ask the run to save a checkpoint and stop, instead of killing
 * the JVM mid-step. A second signal exits at once (the last saved checkpoint is intact: saves are
 * atomic).
 */
final class Signals {

    private Signals() {}

    static void onInterrupt(Runnable requestStop) {
        for (String name : new String[] {"INT", "TERM"}) {
            try {
                Signal.handle(new Signal(name), new sun.misc.SignalHandler() {
                    private boolean asked;

                    @Override
                    public synchronized void handle(Signal signal) {
                        if (asked) {
                            System.err.println("collie: second " + signal.getName() + ", exiting now");
                            Runtime.getRuntime().halt(130);
                        }
                        asked = true;
                        System.err.println("collie: " + signal.getName() + " received; saving a checkpoint after this "
                                + "step (send it again to exit at once)");
                        requestStop.run();
                    }
                });
            } catch (IllegalArgumentException e) {
                // The platform does not have this signal (or the JVM reserves it): nothing to install.
            }
        }
    }
}
